"""`ftkit logs RUN [-f]` against a real `ftkit run` process (tiny model): the live `OUTPUT/<id>/events.jsonl` grows
while the run trains, `logs -f` from another process prints rows as they come and exits when the run ends, and the
live file's events equal the registry's events.jsonl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry

WAIT_S = 300  # a guard against a hung child, never an assertion about speed
ENV = dict(os.environ, OMP_NUM_THREADS="1", FTKIT_TEST_PAUSE_AT="")


def _ftkit(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ftkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _wait_for(test, what: str):  # noqa: ANN001, ANN202 - a () -> value-or-None
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def _file_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return [
        json.loads(line) for line in text.splitlines()[:-1] if line.strip()
    ]  # the last may be half written


def _progress_steps(rows: list[dict]) -> list[int]:
    return [row["step"] for row in rows if row["kind"] == "progress"]


def test_logs_follow_prints_a_running_run_live_and_ends_with_it(tmp_path, recipe_file):
    root = tmp_path / "reg"
    run = _ftkit(
        "run", str(recipe_file), "--json", "--registry", str(root),
        "--set", "training.max_steps=100000", "--set", "training.logging_steps=1",
    )  # fmt: skip
    outputs = recipe_file.parent / "outputs"
    logs = None
    try:
        live = _wait_for(lambda: next(outputs.glob("*/events.jsonl"), None), "the live events file")
        # the run is training: progress rows are in the live file before the run has ended
        _wait_for(lambda: len(_progress_steps(_file_rows(live))) >= 2, "two progress rows in the live file")
        assert run.poll() is None
        run_id = live.parent.name
        with RunRegistry.open(root, create=False) as registry:
            assert registry.load_run(run_id)["run"]["status"] == "running"
        steps_before = max(_progress_steps(_file_rows(live)))
        logs = _ftkit("logs", run_id, "-f", "--json", "--registry", str(root))
        printed: list[dict] = []
        while not any(
            step > steps_before for step in _progress_steps(printed)
        ):  # a step made after it started
            line = logs.stdout.readline()
            assert line, f"logs -f ended early: {logs.stderr.read()}"
            printed.append(json.loads(line))
        assert logs.poll() is None  # still following: the run goes on
        run.send_signal(signal.SIGINT)
        run_out, run_err = run.communicate(timeout=WAIT_S)
        logs_out = logs.stdout.read()  # (not communicate(): it would skip lines readline() has buffered)
        logs_err = logs.stderr.read()
        logs.wait(timeout=WAIT_S)  # ends by itself once the run is recorded
    finally:
        run.kill()
        if logs is not None:
            logs.kill()
    assert run.returncode == 130, run_err
    assert logs.returncode == 0 and "Traceback" not in logs_err, logs_err
    printed += [json.loads(line) for line in logs_out.splitlines()]
    assert json.loads(run_out)["status"] == "interrupted"

    with RunRegistry.open(root, create=False) as registry:
        recorded = registry.load_run(run_id)
    assert recorded["run"]["status"] == "interrupted"
    expected = [(event["kind"], event["message"]) for event in recorded["events"]]
    assert any(kind == "interrupt" for kind, _ in expected)
    live_rows = _file_rows(live) + [json.loads(live.read_text().splitlines()[-1])]
    assert [(r["kind"], r["message"]) for r in live_rows if r["kind"] != "progress"] == expected
    assert [(r["kind"], r["message"]) for r in printed if r["kind"] != "progress"] == expected
    # progress rows are the history's rows, in order
    history_steps = [row["step"] for row in recorded["history"] if "loss" in row]
    assert _progress_steps(printed) == _progress_steps(live_rows)
    assert _progress_steps(live_rows) == [row["step"] for row in recorded["history"]]
    assert set(history_steps) <= set(_progress_steps(printed))

    # human lines: time, kind and message of each row
    human = CliRunner().invoke(app, ["logs", run_id, "--registry", str(root)])
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert len(lines) == len(live_rows)
    assert all(r["time"] in line and r["message"] in line for r, line in zip(live_rows, lines, strict=True))

    # without the output folder's file, the registry's events are printed
    live.unlink()
    fallback = CliRunner().invoke(app, ["logs", run_id, "--json", "--registry", str(root)])
    assert fallback.exit_code == 0, fallback.output
    assert [(r["kind"], r["message"]) for r in map(json.loads, fallback.stdout.splitlines())] == expected


def test_logs_of_an_unknown_run_exits_2(tmp_path):
    root = tmp_path / "reg"
    RunRegistry.open(root).close()
    result = CliRunner().invoke(app, ["logs", "no-such-run", "--registry", str(root)])
    assert result.exit_code == 2, result.output
    assert "no-such-run" in result.output
