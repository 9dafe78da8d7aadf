"""The data checker: row errors with file and line, warnings and statistics for one data file.

One checker serves `ftkit data check` and `ftkit run` (through `dataset.load_checked`), so a file that checks
clean loads, and a file that does not is refused with the same located messages. `check_rows` never raises:
whatever a row holds becomes a problem, not an exception. Token statistics come from `token_stats`, the
loss-mask preview `ftkit data check` shows from `preview`. Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.data.columns import LABEL_RULE, LabelColumn, find_label_column, unused_columns
from ftkit.data.formats import (
    FORMAT_FIELDS,
    Example,
    RowError,
    answer_text,
    choose_format,
    normalize,
    rename_columns,
)
from ftkit.data.readers import Row, RowProblem, read_rows
from ftkit.data.token_stats import DEFAULT_MAX_SEQ_LEN, token_stats

SHORT_ROW_CHARS = 10  # fewer characters of content than this is "very short"
IMBALANCE_RATIO = 5  # largest class at least this many times the smallest is "imbalanced"


@dataclass
class CheckReport:
    """What the checker found in one file."""

    path: str
    format: str
    format_reason: str
    columns: dict[str, str]
    rows: int
    examples: list[Example]
    problems: list[RowProblem]
    stats: dict[str, Any] = field(default_factory=dict)
    preview: dict[str, Any] | None = None
    unused_columns: list[str] = field(default_factory=list)  # columns the format does not read (warned)
    label_column: LabelColumn | None = None  # an unused column that looks like class labels (data/columns.py)

    @property
    def errors(self) -> list[RowProblem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    @property
    def warnings(self) -> list[RowProblem]:
        return [problem for problem in self.problems if problem.severity == "warning"]

    def exit_code(self, strict: bool = False) -> int:
        """2 with errors; 1 with warnings under --strict; else 0."""
        if self.errors:
            return 2
        return 1 if strict and self.warnings else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "format_reason": self.format_reason,
            "columns": self.columns,
            "rows": self.rows,
            "valid_rows": len(self.examples),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [problem.to_dict() for problem in self.problems],
            "stats": self.stats,
            "preview": self.preview,
            "unused_columns": self.unused_columns,
            "label_column": None
            if self.label_column is None
            else {
                "column": self.label_column.label,
                "text": self.label_column.text,
                "classes": self.label_column.classes,
                "evidence": self.label_column.evidence,
                "rule": LABEL_RULE,
            },
        }


def check_file(
    source: str | Path,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    *,
    labels: list[str] | None = None,
    tokenizer: Any = None,
    max_seq_len: int | None = None,
    train_on: str = "completion",
    tokens: bool = True,
) -> CheckReport:
    """Read and check one data file. A missing or unreadable file raises DataError; rows never do."""
    rows, problems = read_rows(source)
    return check_rows(
        str(source),
        rows,
        problems,
        fmt,
        columns,
        labels=labels,
        tokenizer=tokenizer,
        max_seq_len=max_seq_len,
        train_on=train_on,
        tokens=tokens,
    )


def check_rows(
    path: str,
    rows: list[Row],
    read_problems: list[RowProblem] | None = None,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    *,
    labels: list[str] | None = None,
    tokenizer: Any = None,
    max_seq_len: int | None = None,
    train_on: str = "completion",
    tokens: bool = True,
) -> CheckReport:
    """Check rows already read from `path`. Never raises for anything a row holds."""
    problems = list(read_problems or [])
    columns = {str(k): str(v) for k, v in (columns or {}).items()}
    detection = choose_format([row.data for row in rows], fmt, columns)
    report = CheckReport(path, detection.format, detection.reason, detection.columns, len(rows), [], problems)
    if detection.format not in FORMAT_FIELDS:
        if rows:
            problems.append(
                RowProblem(path, 0, f"cannot tell the data format: {detection.reason}", code="unknown-format")
            )
        elif not problems:  # with no readable rows at all, read problems (if any) already say why
            problems.append(RowProblem(path, 0, "the file has no rows", code="empty-file"))
        _finish(report)
        return report

    _unused_column_warnings(report, [row.data for row in rows])
    declared = {label.strip() for label in labels or [] if label.strip()} or None
    row_problems: list[RowProblem] = []
    for row in rows:
        record = rename_columns(row.data, detection.columns) if isinstance(row.data, dict) else row.data
        try:
            data = normalize(record, detection.format)
        except RowError as error:
            row_problems.append(RowProblem(path, row.line, str(error), error.key, code=error.code))
            continue
        except Exception as error:  # a value normalize did not foresee: still a located problem
            row_problems.append(
                RowProblem(path, row.line, f"cannot read this row: {type(error).__name__}: {error}")
            )
            continue
        if declared is not None and "label" in data and str(data["label"]) not in declared:
            row_problems.append(
                RowProblem(
                    path,
                    row.line,
                    f"label {data['label']!r} is not one of the declared labels: {', '.join(sorted(declared))}",
                    "label",
                    code="unknown-label",
                )
            )
            continue
        report.examples.append(Example(path, row.line, data))
    problems.extend(_collapse_missing_columns(path, rows, row_problems))
    if not rows and not problems:
        problems.append(RowProblem(path, 0, "the file has no rows", code="empty-file"))

    _content_warnings(report)
    if detection.format == "classification":
        _label_warnings(report)
    max_len = max_seq_len or DEFAULT_MAX_SEQ_LEN
    report.stats.update(
        {
            "rows": report.rows,
            "valid_rows": len(report.examples),
            "max_seq_len": max_len,
            "train_on": train_on,
        }
    )
    try:
        if tokens:
            stats, token_problems = token_stats(path, report.examples, tokenizer, max_len, train_on)
            report.stats.update(stats)
            problems.extend(token_problems)
    except Exception as error:  # a tokenizer failing as a whole: report it, keep the rest of the check
        problems.append(
            RowProblem(path, 0, f"cannot count tokens: {type(error).__name__}: {error}", code="tokenizer")
        )
    _finish(report)
    return report


def _unused_column_warnings(report: CheckReport, records: list[Any]) -> None:
    """One warning per column the detected format does not read: nothing is dropped without a word. A column
    that looks like class labels (LABEL_RULE) says how to train a classifier on it."""
    report.unused_columns = unused_columns(records, report.format, report.columns)
    if not report.unused_columns:
        return
    if report.format == "text":  # labels beside a text column; other formats' extra columns are bookkeeping
        report.label_column = find_label_column(records, report.unused_columns)
    for column in report.unused_columns:
        message = f"column `{column}` is not used by the {report.format} format: its values are ignored"
        guess = report.label_column
        if guess is not None and guess.label == column:
            mapping = " ".join(f"--columns {k}={v}" for k, v in guess.mapping().items())
            message += (
                f". It looks like class labels ({guess.evidence}): train a classifier with --format "
                f"classification {mapping} (data.format and data.columns in a recipe), or let "
                "`ftkit tune FILE --model M` pick it"
            )
        else:
            message += "; map it with --columns FIELD=COLUMN (data.columns) if the format should read it"
        report.problems.append(
            RowProblem(report.path, 0, message, column, severity="warning", code="unused-column")
        )


def _collapse_missing_columns(path: str, rows: list[Row], problems: list[RowProblem]) -> list[RowProblem]:
    """A field missing from every row is one problem about the file's columns, not one per row."""
    if len(rows) < 2:
        return problems
    missing = Counter(p.key for p in problems if p.code == "missing-field" and p.key and "[" not in p.key)
    whole = {key for key, count in missing.items() if count == len(rows)}
    if not whole:
        return problems
    present = sorted({str(k) for row in rows[:50] if isinstance(row.data, dict) for k in row.data})
    kept = [p for p in problems if not (p.code == "missing-field" and p.key in whole)]
    for key in sorted(whole):
        kept.insert(
            0,
            RowProblem(
                path,
                0,
                f"no row has a `{key}` field; the file's columns are {', '.join(present) or '(none)'}. "
                f"Map one with --columns {key}=COLUMN (data.columns in a recipe)",
                key,
                code="missing-column",
            ),
        )
    return kept


def _content_chars(data: dict[str, Any]) -> int:
    if "messages" in data:
        return sum(len(m["content"].strip()) for m in data["messages"])
    if "chosen" in data:
        return sum(len(answer_text(data[key]).strip()) for key in ("prompt", "chosen", "rejected"))
    return sum(len(v.strip()) for v in data.values() if isinstance(v, str))


def _content_warnings(report: CheckReport) -> None:
    seen: dict[str, int] = {}
    for example in report.examples:
        key = json.dumps(example.data, sort_keys=True, ensure_ascii=False, default=str)
        if key in seen:
            report.problems.append(
                _warning(report, example, f"exact duplicate of line {seen[key]}", "duplicate")
            )
        else:
            seen[key] = example.line
        chars = _content_chars(example.data)
        if chars < SHORT_ROW_CHARS:
            report.problems.append(
                _warning(report, example, f"very short: {chars} characters of content", "short")
            )
        if "rejected" in example.data:
            _pair_warnings(report, example)


def _pair_warnings(report: CheckReport, example: Example) -> None:
    """An empty rejected answer (it still trains), or chosen equal to rejected once surrounding whitespace is
    stripped (of each turn, roles kept): such a pair carries no preference signal."""
    chosen, rejected = example.data["chosen"], example.data["rejected"]
    if not answer_text(rejected).strip():
        message = "`rejected` is empty (the pair still trains)"
        report.problems.append(_warning(report, example, message, "empty-rejected", "rejected"))
    elif _stripped(chosen) == _stripped(rejected):
        message = "`chosen` and `rejected` are the same text: the pair carries no preference signal"
        report.problems.append(_warning(report, example, message, "same-pair", "rejected"))


def _stripped(answer: str | list[dict[str, str]]) -> Any:
    if isinstance(answer, str):
        return answer.strip()
    return [(turn["role"], turn["content"].strip()) for turn in answer]


def _warning(
    report: CheckReport, example: Example, message: str, code: str, key: str | None = None
) -> RowProblem:
    return RowProblem(report.path, example.line, message, key, severity="warning", code=code)


def _label_warnings(report: CheckReport) -> None:
    counts = Counter(example.data["label"] for example in report.examples)
    ordered = sorted(counts, key=str)  # the order the runner assigns ids in
    report.stats["labels"] = {str(label): counts[label] for label in ordered}
    report.stats["label_ids"] = {str(label): index for index, label in enumerate(ordered)}
    if len(counts) == 1:
        only = next(iter(counts))
        report.problems.append(
            RowProblem(
                report.path,
                0,
                f"every row has the label {only!r}: a classifier needs at least two classes",
                "label",
                severity="warning",
                code="single-class",
            )
        )
    elif counts:
        (big, most), (small, least) = counts.most_common()[0], counts.most_common()[-1]
        if most >= IMBALANCE_RATIO * least:
            report.problems.append(
                RowProblem(
                    report.path,
                    0,
                    f"classes are imbalanced: {big!r} has {most} rows, {small!r} only {least} "
                    f"({most / least:.1f}:1); consider rebalancing, and judge the model by more than accuracy",
                    "label",
                    severity="warning",
                    code="class-imbalance",
                )
            )


def _finish(report: CheckReport) -> None:
    report.problems.sort(key=lambda p: (p.severity != "error", p.line))
    report.stats["errors"] = len(report.errors)
    report.stats["warnings"] = len(report.warnings)
    report.stats["rows"] = report.rows
    report.stats["valid_rows"] = len(report.examples)
