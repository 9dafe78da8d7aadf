"""Preparing a run's data: read, detect the format, normalise, split, and count everything dropped."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.data.check import CheckReport, check_file
from ftkit.data.fingerprint import fingerprint
from ftkit.data.formats import Example
from ftkit.data.overlap import Overlap, find_overlap, group_duplicates
from ftkit.data.readers import refuse_special_file
from ftkit.errors import DataError

__all__ = [
    "Example",
    "RunData",
    "deterministic_split",
    "load_checked",
    "load_run_data",
    "problem_lines",
    "split_by_content",
]

MAX_PROBLEMS_SHOWN = 20
SKIPPED_SHOWN = 3  # located skipped rows named in the run's warning; the count is always complete


@dataclass
class RunData:
    """Everything a run needs from its data files."""

    format: str
    format_reason: str
    train: list[Example]
    eval: list[Example]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> {path, sha256, rows}
    split: str | None = None
    warnings: list[str] = field(default_factory=list)  # located checker warnings (duplicates, short rows...)
    overlap: Overlap | None = None  # eval rows that repeat train rows; None without eval rows
    unused_columns: list[str] = field(default_factory=list)  # one located warning per column left unread
    skipped_rows: int | None = None  # rows dropped for errors under data.skip_invalid_rows; None: key off
    skipped: list[str] = field(default_factory=list)  # their located errors, train file first

    def skip_metrics(self) -> dict[str, int]:
        """`data.skipped_rows` for the run metrics, when data.skip_invalid_rows is on (0 included)."""
        return {} if self.skipped_rows is None else {"data.skipped_rows": self.skipped_rows}

    def skip_warning(self, shown: int = SKIPPED_SHOWN) -> str | None:
        """One warning naming how many rows were skipped and where the first ones are; None when none were."""
        if not self.skipped_rows:
            return None
        rows = "row" if self.skipped_rows == 1 else "rows"
        more = f", ... and {len(self.skipped) - shown} more" if len(self.skipped) > shown else ""
        return (
            f"data: skipped {self.skipped_rows} invalid {rows} (skip_invalid_rows: true): "
            f"{'; '.join(self.skipped[:shown])}{more} (`ftkit data check FILE` lists them all)"
        )


def problem_lines(problems: list[Any], limit: int | None = MAX_PROBLEMS_SHOWN) -> list[str]:
    """Located problems as lines, the first `limit` of them and a count of the rest."""
    shown = [str(problem) for problem in (problems if limit is None else problems[:limit])]
    if limit is not None and len(problems) > limit:
        shown.append(f"... and {len(problems) - limit} more")
    return shown


def load_checked(
    path: Path | str, fmt: str, columns: dict[str, str], skip_invalid_rows: bool | None = None
) -> CheckReport:
    """Read and check one file with the checker `ftkit data check` runs; raises DataError listing the located
    errors when there are any. The report keeps the examples and the warnings.

    `skip_invalid_rows` (a run's data.skip_invalid_rows): True keeps the valid rows when every error is a row's
    own (a file-wide error, or no valid row left, still raises); False refuses and names the key in the hint;
    None (callers without the key) refuses without naming it."""
    report = check_file(path, fmt, columns, tokens=False)
    errors = report.errors
    whole_file = [error for error in errors if error.line == 0]
    if not errors or (skip_invalid_rows and not whole_file and report.examples):
        return report
    hint = "fix these rows (`ftkit data check FILE` lists them all, with statistics)"
    if report.format == "unknown":
        hint = (
            "set data.format in the recipe, or map your columns with data.columns "
            "(e.g. {prompt: question, completion: answer})"
        )
    elif skip_invalid_rows is False and not whole_file and report.examples:
        hint += (
            f", or set data.skip_invalid_rows: true in the recipe to train on the {len(report.examples)} valid "
            "rows (each skipped row is reported and counted)"
        )
    raise DataError(
        f"{path}: {len(errors)} error{'s' if len(errors) > 1 else ''} in the data "
        f"({report.format} format: {report.format_reason})",
        problems=problem_lines(errors),
        hint=hint,
    )


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


def split_by_content(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example], str]:
    """Hold out `fraction` of the distinct contents (whitespace and case ignored) for evaluation.

    Copies of one content stay on one side, so no eval row repeats a train row: a held-out content keeps one
    row (its first) and its other copies are dropped; a training content keeps all its rows. Returns
    (train, eval, a description that counts the duplicates and what happened to them).
    """
    groups = group_duplicates(examples)
    try:
        train_groups, eval_groups = deterministic_split(groups, fraction, seed)
    except DataError:
        raise DataError(
            f"eval_split {fraction} leaves no training rows: the {len(examples)} train rows hold "
            f"{len(groups)} distinct contents (whitespace and case ignored)",
            hint="lower data.eval_split, add varied rows, or give a separate eval file in data.eval",
        ) from None
    train = sorted((row for group in train_groups for row in group), key=lambda e: e.line)
    held_out = [group[0] for group in eval_groups]
    repeats = len(examples) - len(groups)
    if not repeats:
        return train, held_out, f"held out {len(held_out)} of {len(examples)} train rows (seed {seed})"
    dropped = sum(len(group) - 1 for group in eval_groups)
    return (
        train,
        held_out,
        f"held out {len(held_out)} of {len(groups)} distinct contents (seed {seed}); {repeats} of "
        f"{len(examples)} train rows repeat another (whitespace and case ignored) and stay on their copy's "
        f"side: {repeats - dropped} kept in train, {dropped} copies of held-out rows dropped",
    )


def load_run_data(
    train_path: Path | str,
    eval_path: Path | str | None,
    fmt: str,
    columns: dict[str, str],
    eval_split: float | None,
    seed: int,
    skip_invalid_rows: bool = False,
) -> RunData:
    """Load train (and eval) data for a run, splitting eval off train when asked. With `skip_invalid_rows`
    rows with errors are left out and recorded in `skipped_rows` / `skipped`, else they refuse the run."""
    for key, source in (("data.train", train_path), ("data.eval", eval_path)):
        if isinstance(source, Path):
            refuse_special_file(source, key)
    report = load_checked(train_path, fmt, columns, skip_invalid_rows)
    skipped = [str(error) for error in report.errors]
    train, fmt, reason, warnings = report.examples, report.format, report.format_reason, report.warnings
    files = {"train": fingerprint(train_path, len(train))}
    split_note = None
    if eval_path is not None:
        eval_report = load_checked(eval_path, fmt, columns, skip_invalid_rows)
        skipped += [str(error) for error in eval_report.errors]
        evaluation, warnings = eval_report.examples, warnings + eval_report.warnings
        files["eval"] = fingerprint(eval_path, len(evaluation))
    else:
        fraction = eval_split if eval_split is not None else (0.1 if len(train) >= 20 else 0.0)
        if fraction > 0:
            train, evaluation, split_note = split_by_content(train, fraction, seed)
        else:
            evaluation = []
            split_note = "no eval data: fewer than 20 train rows and no data.eval or data.eval_split"
    overlap = find_overlap(train, evaluation) if evaluation else None
    unused = [str(w) for w in report.warnings if w.code == "unused-column"]
    return RunData(
        fmt,
        reason,
        train,
        evaluation,
        files,
        split_note,
        [str(w) for w in warnings],
        overlap,
        unused,
        len(skipped) if skip_invalid_rows else None,
        skipped,
    )
