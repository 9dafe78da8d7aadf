"""`methods`, `methods show` and `data check` at 80 and 120 columns: no cell wraps, no column is cut to nothing;
piped, their tables print full values tab-separated."""

from __future__ import annotations

import json
import re

import pytest

from ftkit.methods.catalog import get_method
from tests.cli.terminal import assert_fits, column_starts, piped, row_cells, sections, shows_enough, terminal
from tests.methods.conftest import ALL_METHODS, MERGEABLE

WIDTHS = (80, 120)


@pytest.mark.parametrize("width", WIDTHS)
def test_methods_fits_the_terminal(width):
    _, lines = terminal(["methods"], width)
    assert_fits(lines, width)
    header, rows, notes = lines[0], lines[1 : 1 + len(ALL_METHODS)], lines[1 + len(ALL_METHODS) :]
    assert notes == ["options of one method: ftkit methods show NAME"]  # so no row took a second line
    starts = column_starts(header)
    assert list(starts) == ["method", "mergeable", "trains", "needs", "description"]
    for line, name in zip(rows, ALL_METHODS, strict=True):
        cells = row_cells(line, starts)
        assert cells["method"] == name
        assert cells["mergeable"] == ("yes" if name in MERGEABLE else "no")
        assert shows_enough(cells["description"], get_method(name).description, at_least=24), cells
    qlora = row_cells(rows[list(ALL_METHODS).index("qlora")], starts)
    assert qlora["needs"].startswith("bitsandbytes")


@pytest.mark.parametrize("width", WIDTHS)
def test_methods_show_fits_the_terminal(width):
    _, lines = terminal(["methods", "show", "qlora"], width)
    assert_fits(lines, width)  # the description sentence wraps by word; table rows never wrap
    blocks = sections(lines)
    options = blocks["Options"]
    fields = get_method("qlora").options_model.model_fields
    assert len(options) == 1 + len(fields)
    starts = column_starts(options[0])
    assert list(starts) == ["option", "type", "default", "help"]
    for line, (name, field) in zip(options[1:], fields.items(), strict=True):
        cells = row_cells(line, starts)
        assert cells["option"] == name
        assert shows_enough(cells["help"], field.description, at_least=20), cells
        assert len(cells["type"].replace("…", "")) >= 10 or "…" not in cells["type"]
    facts = [line for line in next(iter(blocks.values())) if re.match(r"\S+( \S+)*\s{2,}\S", line)]
    assert [re.split(r"\s{2,}", line)[0] for line in facts[-4:]] == [
        "mergeable", "trains", "default learning rate", "needs",
    ]  # fmt: skip


@pytest.fixture
def labelled(tmp_path):
    """A classification file: 4 `ham` rows, 2 `[spam]` rows (a label that looks like rich markup)."""
    rows = [
        {"text": f"message number {i} about the weekly team meeting and its agenda", "label": "ham"}
        for i in range(4)
    ] + [
        {"text": f"WIN a prize {i}! call now to claim your reward before it expires", "label": "[spam]"}
        for i in range(2)
    ]
    path = tmp_path / "sms.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


STAT_KEYS = [
    "rows (valid / read)",
    "tokens (est.)",
    "trained tokens (est.)",
    "tokens per row (est.)",
    "over max_seq_len=512",
    "tokens per epoch (est.)",
    "time per epoch (rough)",
]


@pytest.mark.parametrize("width", WIDTHS)
def test_data_check_fits_the_terminal(labelled, width):
    _, lines = terminal(["data", "check", str(labelled)], width)
    blocks = sections(lines)
    stats = blocks["Statistics"]
    histogram = next(rows for title, rows in blocks.items() if title.startswith("Tokens per row"))
    labels = blocks["Labels (id: label, rows)"]
    assert_fits(["Statistics", *stats, *histogram, *labels], width)
    assert [re.split(r"\s{2,}", line)[0] for line in stats] == STAT_KEYS  # one line each: none wrapped
    values = [re.split(r"\s{2,}", line, maxsplit=1)[1].strip() for line in stats]
    assert all(len(value) >= 12 for value in values if "…" in value)  # a cut value keeps 11+ characters
    bins = json.loads(piped(["data", "check", str(labelled), "--json"])[0].stdout)["stats"]["histogram"]
    assert len(histogram) == 1 + len(bins)
    bars = [len(line.rstrip().split()[-1]) for line in histogram[1:] if "█" in line]
    assert max(bars) >= 10
    starts = column_starts(labels[0])
    shown = {(row_cells(line, starts)["label"], row_cells(line, starts)["rows"]) for line in labels[1:]}
    assert shown == {("ham", "4"), ("[spam]", "2")}


def test_data_check_piped_tables(labelled):
    _, lines = piped(["data", "check", str(labelled)])
    at = lines.index("# Labels (id: label, rows)")
    assert lines[at + 1] == "id\tlabel\trows"
    assert sorted(line.split("\t")[1:] for line in lines[at + 2 : at + 4]) == [["[spam]", "2"], ["ham", "4"]]
    assert "# Statistics" in lines and "rows (valid / read)\t6 / 6" in lines
