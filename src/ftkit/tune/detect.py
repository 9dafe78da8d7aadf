"""The task and data format `ftkit tune` trains, decided from the data file (and `--task` when given).

Rules, in order: a file read as classification (`text` and `label`, or `Label`/`SMS` mapped) is classification; a
text file (or one no format matches) with a column that looks like labels (data/columns.py LABEL_RULE) is
classification with that mapping; preference pairs (prompt, chosen, rejected) are preference (DPO); other formats
(text, completion, instruction, chat) are causal-lm. `--task`
overrides where the data allows it (text with a label column can train causal-lm on the text); a task the data
contradicts is a DataError (exit 2) naming the file and its columns. The file is then checked by the checker
`ftkit data check` runs; bad rows stop tune there, located.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.data.check import CheckReport, check_rows
from ftkit.data.columns import LABEL_RULE, LabelColumn, file_columns, find_label_column, unused_columns
from ftkit.data.dataset import problem_lines
from ftkit.data.formats import detect
from ftkit.data.readers import read_rows, refuse_special_file
from ftkit.errors import DataError, UsageError

TASKS = ("auto", "causal-lm", "classification", "preference")


@dataclass
class TaskChoice:
    """What tune trains: the task, the data format and column mapping, why, and the checked report."""

    task: str
    format: str
    columns: dict[str, str]
    reason: str
    report: CheckReport
    label_column: LabelColumn | None = None


def choose_task(path: Path | str, task: str = "auto") -> TaskChoice:
    """Read and check `path`, and decide the task and format (see the module's rules). Raises DataError (exit 2)
    for a file that is not data, bad rows (located), or a `task` the data contradicts; UsageError for a task name
    that does not exist."""
    if task not in TASKS:
        raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if isinstance(path, Path):
        refuse_special_file(path, "DATA")
    rows, read_problems = read_rows(path)
    records = [row.data for row in rows]
    detection = detect(records)
    fmt, columns, reason, label = detection.format, dict(detection.columns), detection.reason, None
    if task != "causal-lm" and fmt in ("text", "unknown"):
        candidates = unused_columns(records, fmt, columns) if fmt == "text" else None
        label = find_label_column(records, candidates)
        if label is not None:
            fmt, columns = "classification", label.mapping()
            reason = (
                f"`{label.label}` looks like class labels ({label.evidence}; the rule: {LABEL_RULE}), so "
                "tune trains a classifier on it"
            )
    chosen = _task_for(path, records, task, fmt, columns, reason)
    report = check_rows(str(path), rows, read_problems, fmt, columns, tokens=False)
    if report.errors:
        raise DataError(
            f"{path}: {len(report.errors)} error{'s' if len(report.errors) > 1 else ''} in the data "
            f"({report.format} format: {report.format_reason})",
            problems=problem_lines(report.errors),
            hint="fix these rows (`ftkit data check FILE` lists them all), then run ftkit tune again"
            if report.format != "unknown"
            else "give a file with known columns (`ftkit data check FILE` says which formats exist)",
        )
    return TaskChoice(chosen, report.format, report.columns, reason, report, label)


def _task_for(
    path: Path | str, records: list[Any], task: str, fmt: str, columns: dict[str, str], reason: str
) -> str:
    """The task for a format, or DataError when `task` contradicts the data."""
    shown = ", ".join(f"`{c}`" for c in file_columns(records)) or "(none)"
    if fmt == "preference":
        if task in ("auto", "preference"):
            return "preference"
        raise DataError(
            f"{path}: --task {task}, but the file is preference data (prompt, chosen, rejected; {reason})",
            hint="use --task preference (or auto): tune trains it with DPO; for supervised training give rows "
            "with a single answer (prompt/completion or messages)",
        )
    if task == "preference":
        raise DataError(
            f"{path}: --task preference, but the file is not preference data (its columns: {shown}; it reads as "
            f"{fmt}: {reason})",
            hint="preference rows have `prompt`, `chosen` and `rejected`; use --task auto for this file",
        )
    if fmt == "unknown":
        return "causal-lm" if task == "auto" else task  # the checker names what is missing
    natural = "classification" if fmt == "classification" else "causal-lm"
    if task in ("auto", natural):
        return natural
    if task == "classification":
        raise DataError(
            f"{path}: --task classification, but the file has no label column (its columns: {shown}; it reads "
            f"as {fmt}: {reason})",
            hint=f"{LABEL_RULE}; add such a column, or use --task auto (causal-lm for this file)",
        )
    mapped = ", ".join(f"`{field}` ← `{column}`" for field, column in columns.items())
    raise DataError(
        f"{path}: --task causal-lm, but the file is classification data ({mapped or 'text, label'}; {reason})",
        hint="use --task classification (or auto); to train a language model on the text alone, give a file "
        "without the label column",
    )
