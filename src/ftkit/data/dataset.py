"""Preparing a run's data: read, detect the format, normalise, split, and count everything dropped."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.data.fingerprint import file_sha256
from ftkit.data.formats import RowError, detect_format, normalize, rename_columns
from ftkit.data.readers import RowProblem, read_rows
from ftkit.errors import DataError

MAX_PROBLEMS_SHOWN = 20


@dataclass
class Example:
    """A canonical example and where it came from."""

    source: str
    line: int
    data: dict[str, Any]


@dataclass
class RunData:
    """Everything a run needs from its data files."""

    format: str
    format_reason: str
    train: list[Example]
    eval: list[Example]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> {path, sha256, rows}
    split: str | None = None


def load_examples(path: Path, fmt: str, columns: dict[str, str]) -> tuple[list[Example], str, str]:
    """Read one file into canonical examples. Returns (examples, format, reason); raises DataError on bad rows."""
    rows, problems = read_rows(path)
    records = [rename_columns(row.data, columns) if isinstance(row.data, dict) else row.data for row in rows]
    reason = "set in the recipe"
    if fmt == "auto":
        fmt, reason = detect_format([r for r in records if isinstance(r, dict)])
        if fmt == "unknown":
            raise DataError(
                f"{path}: cannot tell the data format: {reason}",
                hint="set data.format in the recipe, or map your columns with data.columns "
                "(e.g. {prompt: question, completion: answer})",
            )
    examples = []
    for row, record in zip(rows, records, strict=True):
        try:
            examples.append(Example(str(path), row.line, normalize(record, fmt)))
        except RowError as error:
            problems.append(RowProblem(str(path), row.line, str(error), error.key))
    if problems:
        problems.sort(key=lambda problem: problem.line)
        shown = [str(problem) for problem in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
        raise DataError(
            f"{path}: {len(problems)} bad row{'s' if len(problems) > 1 else ''} ({fmt} format: {reason})",
            problems=shown,
            hint="fix these rows (`ftkit data check FILE` lists them all)",
        )
    if not examples:
        raise DataError(f"{path}: the file has no rows", hint="point data.train at a file with examples")
    return examples, fmt, reason


def deterministic_split(items: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Split off `fraction` of items (at least one) for evaluation, the same way for the same seed."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    eval_count = max(1, round(len(items) * fraction))
    if eval_count >= len(items):
        raise DataError(f"eval_split {fraction} leaves no training rows out of {len(items)}")
    eval_indices = set(order[:eval_count])
    train = [item for i, item in enumerate(items) if i not in eval_indices]
    held_out = [item for i, item in enumerate(items) if i in eval_indices]
    return train, held_out


def load_run_data(
    train_path: Path,
    eval_path: Path | None,
    fmt: str,
    columns: dict[str, str],
    eval_split: float | None,
    seed: int,
) -> RunData:
    """Load train (and eval) data for a run, splitting eval off train when asked."""
    train, fmt, reason = load_examples(train_path, fmt, columns)
    files = {"train": {"path": str(train_path), "sha256": file_sha256(train_path), "rows": len(train)}}
    split_note = None
    if eval_path is not None:
        evaluation, _, _ = load_examples(eval_path, fmt, columns)
        files["eval"] = {"path": str(eval_path), "sha256": file_sha256(eval_path), "rows": len(evaluation)}
    else:
        fraction = eval_split if eval_split is not None else (0.1 if len(train) >= 20 else 0.0)
        if fraction > 0:
            train, evaluation = deterministic_split(train, fraction, seed)
            split_note = (
                f"held out {len(evaluation)} of {len(train) + len(evaluation)} train rows (seed {seed})"
            )
        else:
            evaluation = []
            split_note = "no eval data: fewer than 20 train rows and no data.eval or data.eval_split"
    return RunData(fmt, reason, train, evaluation, files, split_note)
