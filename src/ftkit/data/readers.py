"""Reading data files into rows that remember where they came from (file and line) for located errors."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.errors import DataError

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


@dataclass
class Row:
    """One record and its 1-based line (or record number for binary formats)."""

    line: int
    data: Any


@dataclass
class RowProblem:
    """A problem with one row of a file; `line` is 1-based, `key` the offending field if any."""

    path: str
    line: int
    message: str
    key: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.path}:{self.line}:{key} {self.message}"


def read_rows(path: str | Path) -> tuple[list[Row], list[RowProblem]]:
    """Read a data file into rows. Unparseable rows become problems, never exceptions."""
    file_path = Path(path)
    if file_path.is_dir():
        return _read_datasets_folder(file_path), []
    suffix = file_path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(file_path)
    if suffix == ".json":
        return _read_json(file_path)
    if suffix in (".csv", ".tsv"):
        return _read_delimited(file_path, "\t" if suffix == ".tsv" else ","), []
    if suffix == ".parquet":
        return _read_parquet(file_path), []
    raise DataError(
        f"{file_path}: unsupported file type `{suffix or '(none)'}`",
        hint=f"use one of {', '.join(SUPPORTED_SUFFIXES)} or a datasets folder saved with save_to_disk",
    )


def _reject_nan(token: str) -> Any:
    raise ValueError(f"bare {token} is not valid JSON")


def _read_jsonl(path: Path) -> tuple[list[Row], list[RowProblem]]:
    rows: list[Row] = []
    problems: list[RowProblem] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(Row(number, json.loads(line, parse_constant=_reject_nan)))
            except ValueError as error:
                problems.append(RowProblem(str(path), number, f"invalid JSON: {error}"))
    return rows, problems


def _read_json(path: Path) -> tuple[list[Row], list[RowProblem]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        document = json.loads(text, parse_constant=_reject_nan)
    except ValueError as error:
        line = getattr(error, "lineno", 1)
        return [], [RowProblem(str(path), line, f"invalid JSON: {error}")]
    if isinstance(document, dict):
        # {"column": [values...]} records, or {"data": [rows...]}
        if all(isinstance(value, list) for value in document.values()) and document:
            keys = list(document)
            length = len(document[keys[0]])
            document = [{key: document[key][i] for key in keys} for i in range(length)]
        else:
            document = [document]
    if not isinstance(document, list):
        return [], [RowProblem(str(path), 1, "expected a JSON array of records")]
    # Line numbers for a JSON array: best effort by locating each top-level element's opening brace.
    starts = _array_element_lines(text)
    return [Row(starts[i] if i < len(starts) else i + 1, item) for i, item in enumerate(document)], []


def _array_element_lines(text: str) -> list[int]:
    lines, depth, line, in_string, escape = [], 0, 1, False, False
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            if escape:
                escape = False
            elif char == "\\":
                escape = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            if depth == 1:
                lines.append(line)
            depth += 1
        elif char in "]}":
            depth -= 1
    return lines


def _read_delimited(path: Path, delimiter: str) -> list[Row]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.DictReader(handle, delimiter=delimiter, quoting=quoting)
        return [Row(reader.line_num, dict(record)) for record in reader]


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return [Row(i + 1, record) for i, record in enumerate(table.to_pylist())]


def _read_datasets_folder(path: Path) -> list[Row]:
    from datasets import load_from_disk

    dataset = load_from_disk(str(path))
    if hasattr(dataset, "keys"):  # a DatasetDict: take its train split
        dataset = dataset["train"] if "train" in dataset else dataset[next(iter(dataset.keys()))]
    return [Row(i + 1, record) for i, record in enumerate(dataset)]
