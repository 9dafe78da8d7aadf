"""benchmarks/ui_runs_page.py: Server-Timing parsing and the page's paired sums worked out by hand, registered like
the other benchmarks, and a smoke-size run against a real `ftkit ui` (no timing is asserted)."""

from __future__ import annotations

import pytest
from benchmarks.__main__ import NEEDS_MODEL
from benchmarks.context import Context
from benchmarks.presets import PRESETS
from benchmarks.ui_runs_page import NAME, page_rows, paired_sums, run, server_seconds

from benchmarks import report


def test_server_timing_header_in_seconds():
    assert server_seconds("app;dur=12.5") == pytest.approx(0.0125)
    assert server_seconds('db;dur=3, app;desc="route";dur=250') == pytest.approx(0.25)
    assert server_seconds("db;dur=3") is None
    assert server_seconds(None) is None
    assert server_seconds("app;dur=fast") is None


def test_page_pairs_shell_and_api_of_one_repetition():
    assert paired_sums([0.1, 0.2, None], [1.0, None, 3.0]) == [pytest.approx(1.1), None, None]
    samples = {
        "api": [0.5, 0.9, 0.7, 0.6, 0.8],
        "api_wall": [0.6, 1.0, 0.8, 0.7, 0.9],
        "shell": [0.01, 0.02, 0.6, 0.01, 0.01],  # repetition 3: 0.7 + 0.6 = 1.3
        "sorted": [0.2] * 5,
        "cold": [1.5],
    }
    rows = {row.key: row for row in page_rows(samples, 1000, "cmd") if row.key}
    page = rows["page"].stat
    # sums 0.51, 0.92, 1.30, 0.61, 0.81: median 0.81, min 0.51, max 1.30
    assert (page.median, page.min, page.max, page.n) == pytest.approx((0.81, 0.51, 1.3, 5))
    assert rows["page"].status == "met" and rows["page"].target == "<= 1 s"
    assert rows["api"].stat.median == pytest.approx(0.7) and rows["api"].status == "met"
    assert rows["cold"].status == "missed"  # 1.5 s > 1 s
    assert "1,000 runs" in rows["api"].name


def test_registered_like_the_others():
    assert NAME in report.ORDER and NAME not in NEEDS_MODEL  # no model: the registry is built through its API
    quoted = {key for name, keys, _ in report.SUMMARY if name == NAME for key in keys}
    assert quoted == {"page"}
    assert PRESETS["small"].registry_runs == 1000 and PRESETS["small"].registry_reps >= 5


def test_smoke_run_serves_every_recorded_run(tmp_path):
    result = run(Context(PRESETS["smoke"], tmp_path))
    assert result.error is None
    rows = {row.key: row for row in result.rows if row.key}
    assert set(rows) == {"page", "api", "cold", "sorted"}
    assert all(row.stat.n == 1 and row.stat.median is not None for row in rows.values())
    assert result.details["runs"] == PRESETS["smoke"].registry_runs
    assert result.details["listed"] == PRESETS["smoke"].registry_runs  # every recorded run is in the table
