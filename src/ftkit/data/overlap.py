"""Train/eval overlap: evaluation rows that repeat training rows, exactly or after normalising.

An eval row that repeats a training row measures memory, not generalisation. Rows are compared on their whole
canonical content (every field the format keeps: message roles and contents, prompt and completion, text and
label...), once as written and once normalised (whitespace runs collapsed, case folded). Each row is hashed once,
so comparing two files is linear in their size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ftkit.data.formats import Example

__all__ = ["MAX_MATCHES", "Overlap", "OverlapMatch", "content_key", "find_overlap", "group_duplicates"]

MAX_MATCHES = 20  # overlapping rows listed by line; the counts are always complete


def _normalized(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def content_key(data: dict[str, Any], normalized: bool = False) -> bytes:
    """A 128-bit digest of a canonical example's content; `normalized` collapses whitespace and folds case."""
    content = _normalized(data) if normalized else data
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass
class OverlapMatch:
    """One eval row that repeats a training row: where each is, and whether the match is exact."""

    eval_line: int
    train_line: int
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        return {"eval_line": self.eval_line, "train_line": self.train_line, "exact": self.exact}


@dataclass
class Overlap:
    """How many eval rows repeat a training row. `normalized_rows` counts the exact repeats too."""

    train_source: str
    eval_source: str
    eval_rows: int
    exact_rows: int
    normalized_rows: int
    matches: list[OverlapMatch] = field(default_factory=list)  # the first MAX_MATCHES, in eval order

    def describe(self) -> str:
        """One line for people: the counts and the first overlapping lines."""
        if not self.normalized_rows:
            return f"no eval row repeats a train row ({self.eval_rows:,} eval rows compared)"
        shown = ", ".join(
            f"eval line {m.eval_line} = train line {m.train_line}" + ("" if m.exact else " (normalised)")
            for m in self.matches[:3]
        )
        more = "" if self.normalized_rows <= 3 else f", … ({self.normalized_rows - 3:,} more)"
        return (
            f"{self.normalized_rows:,} of {self.eval_rows:,} eval rows repeat a train row "
            f"({self.exact_rows:,} exactly, {self.normalized_rows - self.exact_rows:,} after normalising "
            f"whitespace and case): {shown}{more}; eval scores on them measure memory, not generalisation"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": self.train_source,
            "eval": self.eval_source,
            "eval_rows": self.eval_rows,
            "exact_rows": self.exact_rows,
            "normalized_rows": self.normalized_rows,
            "matches": [match.to_dict() for match in self.matches],
        }


def find_overlap(train: list[Example], evaluation: list[Example], limit: int = MAX_MATCHES) -> Overlap:
    """Count the eval rows whose content repeats a training row, exactly and after normalising."""
    exact_lines: dict[bytes, int] = {}
    normalized_lines: dict[bytes, int] = {}
    for example in train:  # setdefault keeps the first train line with that content
        exact_lines.setdefault(content_key(example.data), example.line)
        normalized_lines.setdefault(content_key(example.data, normalized=True), example.line)
    exact_rows = normalized_rows = 0
    matches: list[OverlapMatch] = []
    for example in evaluation:
        train_line = exact_lines.get(content_key(example.data))
        exact = train_line is not None
        if not exact:
            train_line = normalized_lines.get(content_key(example.data, normalized=True))
        if train_line is None:
            continue
        exact_rows += exact
        normalized_rows += 1
        if len(matches) < limit:
            matches.append(OverlapMatch(example.line, train_line, exact))
    return Overlap(
        train[0].source if train else "",
        evaluation[0].source if evaluation else "",
        len(evaluation),
        exact_rows,
        normalized_rows,
        matches,
    )


def group_duplicates(examples: list[Example]) -> list[list[Example]]:
    """Rows grouped by normalised content, groups in order of first appearance, rows in file order."""
    groups: dict[bytes, list[Example]] = {}
    for example in examples:
        groups.setdefault(content_key(example.data, normalized=True), []).append(example)
    return list(groups.values())
