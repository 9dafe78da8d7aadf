"""Tables that fit the terminal they print in, and the plain tab-separated form printed when stdout is a pipe.

In a terminal (as `gh run list` or `docker ps` do): no cell ever wraps; columns shrink to their minimum width with
an ellipsis where the cut is made, then the least useful columns are hidden until the rest fit; `wide` shows every
column at full width instead, however long the lines get. Piped: every column, full values, one row per line, tab
separated, with a `# title` line and a header line, so scripts see the same stable format at any width.

Cells are plain values or rich Text, never markup, so user text needs no escaping. rich is imported when a table
is drawn, not when a command module loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftkit.cli.formatting import fmt

GAP = 2  # spaces between two columns


@dataclass(frozen=True)
class Column:
    """How one column behaves in a terminal. The plain (piped) form always prints every value in full.

    show: the terminal form of a value (e.g. a short id, `3m ago`); default `fmt` for numbers, the value otherwise.
    style: a rich style, or a function of the value giving one.
    key: never hidden and never shrunk (ids, names).
    min_width: the narrowest the column may be cut to before columns are hidden instead.
    drop: 0 keeps the column; above 0 it may be hidden when the terminal is too narrow, highest numbers first.
    cut: where a cut cell loses characters: `end`, `start` (paths and model ids keep their end) or `middle`.
    """

    header: str = ""
    show: Callable[[Any], Any] | None = None
    style: str | Callable[[Any], str | None] | None = None
    key: bool = False
    min_width: int = 10
    drop: int = 0
    cut: str = "end"


@dataclass(frozen=True)
class Cell:
    """A cell whose terminal form differs from its full value (a 12-character hash, `1.2 MiB`): `value` is what the
    piped form prints, `shown` what the terminal shows."""

    value: Any
    shown: Any


def as_column(column: Column | str) -> Column:
    return column if isinstance(column, Column) else Column(header=column)


def plain_value(value: Any) -> str:
    """A value as the piped form prints it: full precision, no styling, tabs and newlines escaped."""
    if isinstance(value, Cell):
        value = value.value
    if value is None:
        return ""
    if hasattr(value, "plain") and not isinstance(value, str):  # rich Text
        value = value.plain
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = format(value, ".15g")  # all a float's meaningful digits, without 0.1 + 0.2 noise
    elif isinstance(value, (list, tuple)):
        text = ",".join(plain_value(item) for item in value)
    elif isinstance(value, dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def plain_lines(
    title: str | None, columns: Sequence[Column | str], rows: Sequence[Sequence[Any]]
) -> list[str]:
    """The piped form of a table: `# title`, the header (when any column has a title), then the rows."""
    columns = [as_column(c) for c in columns]
    lines = [f"# {plain_value(title)}"] if title else []
    if any(c.header for c in columns):
        lines.append("\t".join(c.header for c in columns))
    lines.extend("\t".join(plain_value(cell) for cell in row) for row in rows)
    return lines


def fit_widths(
    columns: Sequence[Column], natural: Sequence[int], width: int, empty: Sequence[bool]
) -> list[int | None]:
    """Each column's width in a terminal `width` wide, or None where the column is hidden.

    `natural` is each column's widest cell (header included); `empty` marks columns with no value in any row, which
    go first when they may be hidden. Columns are hidden (highest `drop` first, then the rightmost) only while even
    their minimums do not fit; then the hideable ones are cut to their minimum, then the widest of the rest.
    """
    shown = [i for i in range(len(columns)) if not (empty[i] and columns[i].drop)]
    minimum = [natural[i] if c.key else min(natural[i], c.min_width) for i, c in enumerate(columns)]

    def needed(widths: Sequence[int], among: list[int]) -> int:
        return sum(widths[i] for i in among) + GAP * max(len(among) - 1, 0)

    while needed(minimum, shown) > width:
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    widths = list(natural)
    excess = needed(widths, shown) - width
    # The columns that would be hidden first are cut to their minimum first, then the widest of the rest.
    for i in sorted((i for i in shown if columns[i].drop), key=lambda i: -columns[i].drop):
        cut = min(max(excess, 0), widths[i] - minimum[i])
        widths[i] -= cut
        excess -= cut
    for floor, candidates in (
        (minimum, [i for i in shown if not columns[i].key]),
        ([1] * len(columns), shown),
    ):
        while excess > 0:
            cuttable = [i for i in candidates if widths[i] > floor[i]]
            if not cuttable:
                break
            widest = max(cuttable, key=lambda i: (widths[i], i))
            widths[widest] -= 1
            excess -= 1
    return [widths[i] if i in shown else None for i in range(len(columns))]


def _cut(text: Any, width: int, where: str) -> Any:
    """`text` cut to `width` cells with an ellipsis at the start or in the middle (rich cuts ends itself)."""
    from rich.text import Text

    if where == "end" or text.cell_len <= width or width < 2:
        return text
    if where == "start":
        return Text("…") + text[len(text) - (width - 1) :]
    head = (width - 1) // 2
    return text[:head] + Text("…") + text[len(text) - (width - 1 - head) :]


def terminal_table(
    columns: Sequence[Column | str], rows: Sequence[Sequence[Any]], width: int, wide: bool = False
) -> tuple[Any, list[str]]:
    """(rich Table fitted to `width`, the headers of the columns it had to hide)."""
    from rich.table import Table
    from rich.text import Text

    columns = [as_column(c) for c in columns]
    empty = [all(_blank(row[i]) for row in rows) for i in range(len(columns))]
    cells = []
    for row in rows:
        line = []
        for column, value in zip(columns, row, strict=True):
            if isinstance(value, Cell):
                value = value.shown
            shown = column.show(value) if column.show else value
            text = shown.copy() if isinstance(shown, Text) else Text(_text(shown))
            style = column.style(value) if callable(column.style) else column.style
            if style:
                text.stylize(style)
            line.append(text)
        cells.append(line)
    natural = [max([len(c.header)] + [row[i].cell_len for row in cells]) for i, c in enumerate(columns)]
    widths = natural if wide else fit_widths(columns, natural, width, empty)
    shown = [i for i, w in enumerate(widths) if w is not None]
    table = Table(
        box=None,
        show_header=any(c.header for c in columns),
        header_style="bold",
        pad_edge=False,
        padding=(0, GAP // 2),
        expand=False,
    )
    for i in shown:
        table.add_column(Text(columns[i].header), width=widths[i], no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*(_cut(row[i], widths[i], columns[i].cut) for i in shown))
    hidden = [columns[i].header for i, w in enumerate(widths) if w is None and not empty[i]]
    return table, hidden


def _text(value: Any) -> str:
    if isinstance(value, (list, dict)):  # whole: the table cuts it to the room there is
        return json.dumps(value, default=str)
    return value if isinstance(value, str) else fmt(value)  # fmt shows None as "—"


def _blank(value: Any) -> bool:
    if isinstance(value, Cell):
        value = value.value
    return value is None or value == "" or value == [] or value == ()
