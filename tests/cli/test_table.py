"""The pieces under every table: the one value formatter, short run ids, the width fitting and the piped form."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from rich.text import Text

from ftkit.cli.formatting import ago, fmt, fmt_delta, fmt_size, unique_prefixes
from ftkit.cli.table_fit import Cell, Column, fit_widths, plain_lines, plain_value
from ftkit.registry.refs import resolve_reference


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (True, "true"),
        (0.0, "0"),
        (2.0, "2"),
        (0.12345678, "0.1235"),
        (-1.5, "-1.5"),
        (0.00012345, "0.000123"),
        (1e-5, "1e-05"),
        (1234.56, "1,234.6"),
        (100000.0, "100,000"),
        (1e15, "1.000e+15"),
        (2048, "2048"),  # config values below 10,000 stay copyable into YAML
        (123456, "123,456"),
        ("lora", "lora"),
        ([1, 2], "[1, 2]"),
        (list(range(40)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, …"),  # 59 + "…"
    ],
)
def test_fmt(value, shown):
    assert fmt(value) == shown


def test_fmt_delta_size_and_age():
    assert fmt_delta(0.5, 25.0) == ("+0.5", "+25.0%")
    assert fmt_delta(-0.75, -37.5) == ("-0.75", "-37.5%")
    assert fmt_delta(1.0, float("inf")) == ("+1", "new")
    assert fmt_delta(None, None) == ("", "")
    assert [fmt_size(n) for n in (None, 512, 1536, 3 * 1024**3)] == ["—", "512 B", "1.5 KiB", "3.0 GiB"]
    now = datetime(2025, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert ago((now - timedelta(seconds=90)).isoformat(), now) == "1m ago"
    assert ago((now - timedelta(hours=2, minutes=5)).isoformat(), now) == "2h ago"
    assert ago("2025-01-01T12:00:00Z", now) == "1d ago"
    assert ago((now + timedelta(hours=1)).isoformat(), now) == "2025-01-02 13:00"
    assert ago(None, now) == "—"


def test_unique_prefixes_by_hand():
    ids = [
        "20250101-120000-aaaaaa",
        "20250101-120000-aaaabb",
        "20250102-093000-cccccc",
        "20250301-080000-dddddd",
    ]
    assert unique_prefixes(ids) == {
        "20250101-120000-aaaaaa": "20250101-120000-aaaaa",
        "20250101-120000-aaaabb": "20250101-120000-aaaab",
        "20250102-093000-cccccc": "20250102",
        "20250301-080000-dddddd": "2025030",  # git's minimum of 7
    }
    # a run named like an id prefix would make the prefix ambiguous: the prefix grows past it
    assert unique_prefixes(ids, names=["2025030-nightly"])["20250301-080000-dddddd"] == "20250301"


def test_unique_prefixes_resolve_to_their_run():
    """Every prefix shown must be a reference `ftkit show` resolves to that very run, and no shorter than 7."""
    rng = random.Random(7)
    ids = sorted(
        {f"2025{rng.randint(1, 3):02d}{rng.randint(1, 3):02d}-1200{rng.randint(0, 2):02d}-{rng.randrange(16**6):06x}"
         for _ in range(300)}
    )  # fmt: skip
    runs = [{"id": run_id, "name": f"run-{i}"} for i, run_id in enumerate(ids)]
    prefixes = unique_prefixes(ids, [run["name"] for run in runs])
    for run_id, prefix in prefixes.items():
        assert len(prefix) >= 7 and run_id.startswith(prefix)
        assert resolve_reference(prefix, runs, {}) == run_id
        if len(prefix) > 7:  # and one character less would not do
            assert sum(other.startswith(prefix[:-1]) for other in ids) > 1


def cols(*specs: tuple) -> list[Column]:
    return [Column(header, key=key, min_width=minimum, drop=drop) for header, key, minimum, drop in specs]


def test_fit_widths_cuts_then_hides_then_cuts_keys_last():
    columns = cols(("id", True, 10, 0), ("model", False, 5, 0), ("tags", False, 10, 1))
    natural = [10, 30, 8]
    assert fit_widths(columns, natural, 200, [False] * 3) == [10, 30, 8]  # room enough: untouched
    assert fit_widths(columns, natural, 30, [False] * 3) == [10, 8, 8]  # model cut to fit: 26 + 2 gaps of 2
    assert fit_widths(columns, natural, 20, [False] * 3) == [10, 8, None]  # minimums too wide: tags hidden
    assert fit_widths(columns, natural, 60, [False, False, True]) == [10, 30, None]  # empty and hideable
    assert fit_widths(columns, natural, 9, [False] * 3) == [
        4,
        3,
        None,
    ]  # a 9-column terminal: keys give way last


def test_fit_widths_cuts_hideable_columns_first():
    columns = cols(("name", True, 4, 0), ("description", False, 20, 0), ("needs", False, 8, 1))
    # 6 + 60 + 24 + 4 gaps = 94: in 80 columns the hideable `needs` alone gives up 14
    assert fit_widths(columns, [6, 60, 24], 80, [False] * 3) == [6, 60, 10]
    # in 70, `needs` goes down to its minimum (8) before the description gives up the other 8
    assert fit_widths(columns, [6, 60, 24], 70, [False] * 3) == [6, 52, 8]


def test_plain_form():
    assert plain_value(None) == "" and plain_value(False) == "false"
    assert plain_value(0.1 + 0.2) == "0.3" and plain_value(1 / 3) == "0.333333333333333"
    assert plain_value(["a", "b"]) == "a,b" and plain_value({"r": 8}) == '{"r": 8}'
    assert plain_value("tab\there\nnewline \\") == "tab\\there\\nnewline \\\\"
    assert plain_value(Text("styled", style="red")) == "styled"
    assert plain_value(Cell(1536, "1.5 KiB")) == "1536"
    columns = [Column(""), Column("")]
    assert plain_lines("Facts", columns, [["status", "ok"]]) == [
        "# Facts",
        "status\tok",
    ]  # no empty header row
    assert plain_lines(None, ["a", "b"], [[1, None]]) == ["a\tb", "1\t"]
