"""Which columns a data format uses, which it leaves out, and which column looks like class labels.

Nothing in a file is dropped without a word: `unused_columns` names every column the detected format does not
read, and `find_label_column` recognises a label column beside a text column whatever its name (`category`,
`intent`, `Label`...). The label rule, stated once (LABEL_RULE) and shown where it is applied:

    at least 2 distinct values, each a short string (at most 100 characters) or an integer; at most 10 % of the
    rows distinct (so each class repeats) and at most 1,000 classes; beside a text column (strings, on average
    longer than the labels and not itself label-like).

Nothing here imports torch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ftkit.data.formats import FORMAT_FIELDS

MAX_LABEL_CHARS = 100
MAX_DISTINCT_FRACTION = 0.10
MAX_CLASSES = 1_000
LABEL_RULE = (
    "a label column has at least 2 distinct values, each a short string (at most 100 characters) or an "
    "integer, at most 10 % of the rows distinct and at most 1,000 classes, beside a text column"
)

# Fields a format reads when present, beside its required ones (FORMAT_FIELDS).
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("conversations", "system"),
    "instruction": ("input", "system"),
    "completion": ("question", "answer"),
}


@dataclass
class LabelColumn:
    """A column recognised as class labels, the text column beside it, and the evidence."""

    label: str
    text: str
    classes: int
    rows: int
    counts: dict[str, int]

    @property
    def evidence(self) -> str:
        """The numbers the rule was applied to, e.g. "3 distinct values over 40 rows (7.5 %)"."""
        return (
            f"{self.classes:,} distinct values over {self.rows:,} rows "
            f"({100 * self.classes / max(self.rows, 1):.1f} %) beside the text column `{self.text}`"
        )

    def mapping(self) -> dict[str, str]:
        """The data.columns mapping that reads this file as classification (format field -> column)."""
        mapping = {}
        if self.text != "text":
            mapping["text"] = self.text
        if self.label != "label":
            mapping["label"] = self.label
        return mapping


def file_columns(records: list[Any]) -> list[str]:
    """Every column name in the records, in first-seen order."""
    seen: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            seen.update(dict.fromkeys(str(key) for key in record))
    return list(seen)


def used_columns(fmt: str, mapping: dict[str, str]) -> set[str]:
    """The file's columns a format reads, after a `data.columns` mapping (format field -> column)."""
    fields = FORMAT_FIELDS.get(fmt, ()) + OPTIONAL_FIELDS.get(fmt, ())
    used = {mapping.get(name, name) for name in fields}
    if fmt == "completion" and mapping.get("prompt") == "question":
        used |= {"question", "answer"}
    return used


def unused_columns(records: list[Any], fmt: str, mapping: dict[str, str]) -> list[str]:
    """The columns of `records` the format `fmt` does not read (nothing for an unknown format)."""
    if fmt not in FORMAT_FIELDS:
        return []
    used = used_columns(fmt, mapping)
    return [column for column in file_columns(records) if column not in used]


def _label_values(records: list[dict[str, Any]], column: str) -> list[str] | None:
    values = []
    for record in records:
        value = record.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        if isinstance(value, str) and len(value) > MAX_LABEL_CHARS:
            return None
        values.append(str(value))
    return values


def is_label_like(values: list[str], rows: int) -> bool:
    """The label rule (LABEL_RULE) on one column's non-empty values out of `rows` rows."""
    distinct = len(set(values))
    return 2 <= distinct <= MAX_CLASSES and distinct <= MAX_DISTINCT_FRACTION * rows and len(values) >= 2


def _mean_chars(records: list[dict[str, Any]], column: str) -> float | None:
    """Mean length of a column's values when every present value is a string, else None."""
    lengths = []
    for record in records:
        value = record.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            return None
        lengths.append(len(value))
    return sum(lengths) / len(lengths) if lengths else None


def find_label_column(records: list[Any], candidates: list[str] | None = None) -> LabelColumn | None:
    """The column that holds class labels beside a text column (LABEL_RULE), or None.

    `candidates` limits the label columns considered (e.g. the columns a format leaves unused); the text column
    is the string column with the longest values that is not itself label-like. With several label-like
    columns, the one named like a label (label, class, category, intent, target) wins, then the fewest classes.
    """
    rows = [record for record in records if isinstance(record, dict)]
    if len(rows) < 2:
        return None
    columns = file_columns(rows)
    label_like: dict[str, list[str]] = {}
    for column in columns:
        values = _label_values(rows, column)
        if values is not None and is_label_like(values, len(rows)):
            label_like[column] = values
    texts = [
        (length, column)
        for column in columns
        if column not in label_like and (length := _mean_chars(rows, column)) is not None
    ]
    if not texts:
        return None
    text_length, text = max(texts)
    named = ("label", "labels", "class", "category", "intent", "target", "y")
    choices = [
        column
        for column in label_like
        if (candidates is None or column in candidates)
        and _mean_label_chars(label_like[column]) < text_length
    ]
    if not choices:
        return None
    best = min(choices, key=lambda c: (c.lower() not in named, len(set(label_like[c])), columns.index(c)))
    counts = Counter(label_like[best])
    return LabelColumn(best, text, len(counts), len(rows), dict(counts.most_common()))


def _mean_label_chars(values: list[str]) -> float:
    return sum(map(len, values)) / max(len(values), 1)
