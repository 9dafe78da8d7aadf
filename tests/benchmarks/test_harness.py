"""The benchmark harness's own logic: statistics, paired ratios, JSON parsing and the Markdown table.

No timing is asserted here: measurements live in `python -m benchmarks`, never in the test suite.
"""

from __future__ import annotations

import json
import sys

from benchmarks.harness import (
    BenchResult,
    Row,
    Stat,
    check_target,
    last_json_object,
    ratio_stat,
    render_markdown,
    run_child,
    write_report,
)
from benchmarks.sides import best_of_n_ratio, steady_rate


def test_stat_median_min_max_ignore_missing_values():
    stat = Stat.of([3.0, None, 1.0, 2.0, 10.0])
    assert (stat.median, stat.min, stat.max, stat.n) == (2.5, 1.0, 10.0, 4)
    assert Stat.of([5]).median == 5.0
    empty = Stat.of([None])
    assert (empty.median, empty.min, empty.max, empty.n) == (None, None, None, 0)


def test_ratio_stat_pairs_repetitions_and_skips_broken_pairs():
    stat = ratio_stat([10.0, 12.0, None, 9.0], [10.0, 10.0, 5.0, 0.0])
    assert stat.values == [1.0, 1.2]
    assert stat.median == 1.1


def test_check_target():
    assert check_target(1.01, minimum=1.0) == "met"
    assert check_target(0.99, minimum=1.0) == "missed"
    assert check_target(0.31, maximum=0.3) == "missed"
    assert check_target(None, minimum=1.0) == "n/a"


def test_steady_rate_leaves_out_the_first_step():
    steps = [
        {"step": 1, "time_s": 10.0, "tokens": 100},
        {"step": 2, "time_s": 12.0, "tokens": 200},
        {"step": 3, "time_s": 14.0, "tokens": 300},
    ]
    assert steady_rate(steps) == 50.0
    assert steady_rate(steps[:1]) is None


def test_last_json_object_finds_the_payload_after_other_output():
    text = 'loading...\n{"a": 1}\nnoise\n' + json.dumps({"status": "ok", "metrics": {"x": 2}}, indent=2)
    assert last_json_object(text) == {"status": "ok", "metrics": {"x": 2}}
    assert last_json_object('progress\n{"b": 2}\n') == {"b": 2}
    assert last_json_object("no json here") is None


def test_run_child_reports_exit_code_output_and_peak_rss():
    child = run_child([sys.executable, "-c", "import json; print(json.dumps({'v': 7})); raise SystemExit(3)"])
    assert child.returncode == 3
    assert child.json() == {"v": 7}
    assert child.max_rss_mb and child.max_rss_mb > 1


def _report() -> dict:
    result = BenchResult("overhead")
    result.rows = [
        Row(
            "overhead",
            "ratio ftkit / plain | train loop",
            "x",
            Stat.of([1.02, 0.98, 1.01]),
            "python -m b",
            target=">= 1.00",
            status="met",
        ),
        Row("overhead", "ftkit tokens/s", "tok/s", Stat.of([1234.5, 1300.0]), "python -m b"),
    ]
    result.notes.append("same tokens on both sides")
    broken = BenchResult("memory", error="qlora missing")
    return {
        "preset": "small",
        "command": "python -m benchmarks --preset small",
        "started_at": "2026-01-01T00:00:00+00:00",
        "total_seconds": 12.0,
        "git_commit": "abc123",
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "usable_cores": 2,
            "memory_gib": 4.0,
            "gpus": [],
            "load_average_at_start": [0.1, 0.1, 0.1],
        },
        "packages": {"python": "3.11", "ftkit": "0.1.0", "torch": "2.13", "trl": "1.16"},
        "benchmarks": [result.to_dict(), broken.to_dict()],
    }


def test_markdown_table_has_one_row_per_measurement_with_machine_versions_and_command():
    markdown = render_markdown(_report())
    table = [line for line in markdown.splitlines() if line.startswith("| overhead")]
    assert len(table) == 2
    ratio_row = table[0]
    assert "1.010" in ratio_row and "0.980" in ratio_row and "1.020" in ratio_row  # median, min, max
    assert "| 3 |" in ratio_row
    assert "ratio ftkit / plain \\| train loop" in ratio_row  # pipes in names are escaped
    assert ">= 1.00 (met)" in ratio_row
    assert "Test CPU ×2 (no GPU)" in ratio_row and "torch 2.13" in ratio_row
    assert "`python -m b`" in ratio_row
    assert "1,234" in table[1] or "1,267" in table[1]
    assert "| memory | **error**: qlora missing" in markdown
    assert "same tokens on both sides" in markdown


def test_write_report_writes_latest_and_stamped_files(tmp_path):
    latest_md = tmp_path / "LATEST.md"
    path = write_report(_report(), tmp_path / "results", latest_md)
    assert path == tmp_path / "results" / "latest.json"
    assert json.loads(path.read_text())["preset"] == "small"
    assert (tmp_path / "results" / "latest.md").read_text() == latest_md.read_text()
    assert len(list((tmp_path / "results").glob("20260101T000000*-small.json"))) == 1


def test_best_of_n_ratio_compares_identical_batches_by_their_fastest_repetition():
    def run(*durations):
        rows, elapsed = [], 0.0
        for step, seconds in enumerate(durations, start=1):
            elapsed += seconds
            rows.append({"step": step, "time_s": elapsed, "tokens": 100 * step})
        return rows

    ftkit = [run(9.0, 2.0, 2.0), run(9.0, 8.0, 2.5)]  # the second repetition's step 2 hit a busy machine
    plain = [run(5.0, 2.0, 3.0), run(5.0, 4.0, 2.0)]
    # step 1 (warm-up) is left out; fastest per step: ftkit 2 + 2, plain 2 + 2
    assert best_of_n_ratio(ftkit, plain) == 1.0
    assert best_of_n_ratio([run(9.0, 4.0, 4.0)], plain) == 0.5
    assert best_of_n_ratio([], plain) is None
