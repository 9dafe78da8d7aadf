"""Issue 11 §5: one 200 MB line in a .jsonl file is never read whole. The reader stops at its per-line limit,
reports the row located (file:line, its size, the limit, what to do) and goes on with the next line.

Each command runs in a subprocess started by a small launcher that reports the command's peak memory (see
_LAUNCHER). The timeout only guards against a hang."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftkit.data.readers import MAX_LINE_BYTES, read_rows
from tests.conftest import write_recipe

FTKIT = Path(sys.executable).with_name("ftkit")
HUGE = 200 * 1024 * 1024
LIMIT_MB = MAX_LINE_BYTES / 2**20


def huge_line_file(path: Path, size: int = HUGE) -> Path:
    """A .jsonl whose first line holds `size` bytes before its newline (sparse: fast to write, no disk used) and
    whose second line is a fine row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(b'{"text": "')
        handle.seek(size - 2)
        handle.write(b'"}\n{"text": "a fine row"}\n')
    return path


# Peak memory of one command, measured by a small launcher: a child's ru_maxrss counts the memory of the
# process it was forked from (here pytest, with torch loaded), so the launcher must be a small process.
_LAUNCHER = """
import resource, subprocess, sys
with open(sys.argv[2], "wb") as out:
    try:
        code = subprocess.run(
            sys.argv[3:], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=float(sys.argv[1])
        ).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def run_measured(args: list[str], tmp_path: Path, timeout: float = 120) -> tuple[int, str, float]:
    """(exit code, stdout + stderr, peak RSS in MB) of one command; the timeout only guards against a hang."""
    out_path = tmp_path / "output.txt"
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(timeout), str(out_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    code, peak_kb = launched.stdout.split()
    output = out_path.read_text(errors="replace")
    assert code != "timeout", f"hung for {timeout} s: {output}"
    return int(code), output, int(peak_kb) / 1024


def test_the_reader_reports_a_line_beyond_the_limit_and_reads_on(tmp_path):
    path = huge_line_file(tmp_path / "train.jsonl", MAX_LINE_BYTES + 10)
    rows, problems = read_rows(path)
    assert [(row.line, row.data) for row in rows] == [(2, {"text": "a fine row"})]
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.line, problem.code, problem.severity) == (1, "line-too-long", "error")
    assert str(problem).startswith(f"{path}:1: ")
    assert f"{MAX_LINE_BYTES + 10:,} bytes" in problem.message and "64 MiB" in problem.message


def test_lines_around_the_limit_and_read_chunks_match_a_plain_reading(tmp_path, monkeypatch):
    """Lines just under, at and over the limit, and across the reader's 1 MiB chunks, against json.loads of each
    line (with a 3 MiB limit so the file stays small)."""
    limit = 3 * 2**20
    monkeypatch.setattr("ftkit.data.readers.MAX_LINE_BYTES", limit)
    frame = len('{"t": ""}')
    sizes = [0, 2**20 - 1, 2**20, 2**20 + 1, 2 * 2**20 + 5, limit - 1, limit, limit + 1, 5 * 2**20, 7]
    lines = [f'{{"t": "{"x" * (size - frame)}"}}' if size >= frame else "" for size in sizes]
    path = tmp_path / "edges.jsonl"
    path.write_bytes("\r\n".join(lines[:4]).encode() + b"\n" + "\n".join(lines[4:]).encode())
    rows, problems = read_rows(path)
    expected = [
        (number, json.loads(text))
        for number, text in enumerate(lines, start=1)
        if text and len(text) <= limit
    ]
    assert [(row.line, row.data) for row in rows] == expected
    too_long = [(p.line, p.message.split(" bytes")[0] + " bytes") for p in problems]
    assert too_long == [(8, f"this line is {limit + 1:,} bytes"), (9, f"this line is {5 * 2**20:,} bytes")]


def test_a_line_at_the_limit_is_read(tmp_path):
    path = tmp_path / "edge.jsonl"
    text = "b" * (MAX_LINE_BYTES - len('{"text": ""}'))
    path.write_text('{"text": "' + text + '"}\n')
    rows, problems = read_rows(path)
    assert problems == [] and len(rows) == 1 and rows[0].data["text"] == text


def small_bad_file(path: Path) -> Path:
    """The same command's baseline: a file with one unreadable row, so it fails the same way, reading nothing big."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"text": \n{"text": "a fine row"}\n')
    return path


@pytest.mark.parametrize("command", [["data", "check"], ["run", "--dry-run"]], ids=["data-check", "dry-run"])
def test_a_200_mb_line_is_reported_in_bounded_memory(tmp_path, command):
    peaks = {}
    for kind, make in (("small", small_bad_file), ("huge", huge_line_file)):
        data = make(tmp_path / kind / "train.jsonl")
        target = data
        if command[0] == "run":
            target = write_recipe(tmp_path / kind / "recipe.yaml", "org/model", data)
        code, output, peaks[kind] = run_measured([str(FTKIT), *command, str(target)], tmp_path)
        assert code == 2, output
    flat = " ".join(output.split())
    assert f"{data}:1: this line is {HUGE:,} bytes, over the 64 MiB limit for one row" in flat
    assert "split the row" in flat
    # Reading the line whole cost ~600 MB more than the baseline; at most one limit's worth is read of it now.
    assert peaks["huge"] - peaks["small"] < LIMIT_MB * 1.25 + 32, peaks


def test_run_stops_on_a_200_mb_line_with_exit_2(tmp_path):
    data = huge_line_file(tmp_path / "huge.jsonl")
    recipe = write_recipe(tmp_path / "recipe.yaml", "org/model", data)
    args = [str(FTKIT), "run", str(recipe), "--registry", str(tmp_path / "registry")]
    code, output, _ = run_measured(args, tmp_path)
    assert code == 2, output
    assert f"{data}:1: this line is {HUGE:,} bytes" in " ".join(output.split())
