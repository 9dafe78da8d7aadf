"""Reading data files into rows that remember where they came from (file and line) for located errors."""

from __future__ import annotations

import csv
import io
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.errors import DataError
from ftkit.hub_ids import is_hub_dataset_id

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
# One .jsonl line is read whole only up to this size: a row far beyond any max_seq_len is cut by characters before
# tokenizing anyway, and an endless or runaway line (a stray binary, a missing newline) must not fill memory.
MAX_LINE_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


@dataclass
class Row:
    """One record and its 1-based line (or record number for binary formats)."""

    line: int
    data: Any


@dataclass
class RowProblem:
    """A problem with one row of a file; `line` is 1-based (0: the file as a whole), `key` the offending field,
    `code` a stable name for the kind of problem, `severity` error or warning."""

    path: str
    line: int
    message: str
    key: str | None = None
    severity: str = "error"
    code: str = "invalid-row"

    def __str__(self) -> str:
        key = f" {self.key}:" if self.key else ""
        where = f"{self.path}:{self.line}:" if self.line else f"{self.path}:"
        return f"{where}{key} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
            "code": self.code,
            "key": self.key,
            "message": self.message,
        }


def data_source(value: str, base_dir: Path) -> Path | str:
    """A recipe's data path made absolute against the recipe's folder, or the value itself when it names no
    local file and looks like a Hub dataset id."""
    candidate = Path(value).expanduser()
    resolved = candidate if candidate.is_absolute() else (base_dir / candidate).resolve()
    if not resolved.exists() and is_hub_dataset_id(value):
        return value
    return resolved


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(path: Path) -> str | None:
    """What a path is when it is not a regular file or folder (after following symlinks), else None.
    Such files are never opened: a FIFO blocks forever and a device like /dev/zero never ends."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return None


def refuse_special_file(path: Path, label: str | None = None) -> None:
    """DataError, located at `label` (a recipe key) or the path, when the path is not a regular file or folder."""
    kind = special_file_kind(path)
    if kind is not None:
        where = f"{label}: {path}" if label else str(path)
        raise DataError(
            f"{where}: is {kind}, not a regular file",
            hint="point the data at a regular file (copy the stream to a file first)",
        )


def read_rows(path: str | Path) -> tuple[list[Row], list[RowProblem]]:
    """Read a data file into rows. Unparseable rows become problems, never exceptions; a missing or
    unreadable file is a DataError."""
    file_path = Path(path)
    if not file_path.exists():
        if isinstance(path, str) and is_hub_dataset_id(path):
            return _read_hub_dataset(path), []
        raise DataError(
            f"{file_path}: no such file or folder",
            hint="check the path (relative paths in a recipe are relative to the recipe's folder)",
        )
    refuse_special_file(file_path)
    if file_path.is_dir():
        return _read_datasets_folder(file_path), []
    suffix = file_path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{file_path}: unsupported file type `{suffix or '(none)'}`",
            hint=f"use one of {', '.join(SUPPORTED_SUFFIXES)} or a datasets folder saved with save_to_disk",
        )
    try:
        if suffix == ".jsonl":
            return _read_jsonl(file_path)
        if suffix == ".json":
            return _read_json(file_path)
        if suffix in (".csv", ".tsv"):
            return _read_delimited(file_path, "\t" if suffix == ".tsv" else ",")
        return _read_parquet(file_path), []
    except OSError as error:
        raise DataError(f"{file_path}: cannot read the file: {error.strerror or error}") from None


def _reject_nan(token: str) -> Any:
    raise ValueError(f"bare {token} is not valid JSON (use null, or remove the row)")


def _json_message(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error.msg} (column {error.colno})"
    return f"invalid JSON: {error}"


def _decode(data: bytes, path: Path) -> tuple[str, list[RowProblem]]:
    """Decode UTF-8 (a BOM is dropped); bytes that are not UTF-8 are one problem at their line."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problem = RowProblem(
            str(path),
            line,
            f"not valid UTF-8 (byte 0x{data[error.start]:02x}); save the file as UTF-8",
            code="invalid-utf8",
        )
        return data.decode("utf-8-sig", errors="replace"), [problem]


def _bounded_lines(handle: Any, limit: int) -> Any:
    """(line number, bytes, size) for each line of a binary file. A line longer than `limit` bytes (its newline
    not counted) is never held whole: what was read of it is dropped, the rest skipped in chunks, and it yields
    None with its full size."""
    number, readline = 0, handle.readline
    while first := readline(_READ_CHUNK):
        number += 1
        if first.endswith(b"\n"):  # the usual line: short, read in one piece
            yield number, first, len(first) - 1
            continue
        parts, size = [first], len(first)
        while not parts[-1].endswith(b"\n") and size <= limit and (more := readline(_READ_CHUNK)):
            parts.append(more)
            size += len(more)
        ended = parts[-1].endswith(b"\n")
        size -= _newline_bytes(parts[-1])
        if size <= limit:
            yield number, first if len(parts) == 1 else b"".join(parts), size
            continue
        del parts, first  # over the limit: keep nothing of it
        while not ended and (more := readline(_READ_CHUNK)):
            ended = more.endswith(b"\n")
            size += len(more) - _newline_bytes(more)
        yield number, None, size


def _newline_bytes(chunk: bytes) -> int:
    return 1 if chunk.endswith(b"\n") else 0


def _too_long(path: Path, number: int, size: int) -> RowProblem:
    return RowProblem(
        str(path),
        number,
        f"this line is {size:,} bytes, over the {MAX_LINE_BYTES // 2**20} MiB limit for one row, so it was "
        "not read; split the row into smaller ones or shorten it (text beyond training.max_seq_len is cut anyway)",
        code="line-too-long",
    )


def _read_jsonl(path: Path) -> tuple[list[Row], list[RowProblem]]:
    rows: list[Row] = []
    problems: list[RowProblem] = []
    with path.open("rb") as handle:
        for number, raw, size in _bounded_lines(handle, MAX_LINE_BYTES):
            if raw is None:
                problems.append(_too_long(path, number, size))
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                problems.append(
                    RowProblem(
                        str(path),
                        number,
                        f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
                        "save the file as UTF-8",
                        code="invalid-utf8",
                    )
                )
                continue
            if not line.strip():
                continue
            try:
                rows.append(Row(number, json.loads(line, parse_constant=_reject_nan)))
            except ValueError as error:
                code = "nan" if "bare" in str(error) and not isinstance(error, json.JSONDecodeError) else None
                problems.append(
                    RowProblem(str(path), number, _json_message(error), code=code or "invalid-json")
                )
            except RecursionError:
                problems.append(
                    RowProblem(str(path), number, "invalid JSON: nested too deeply", code="invalid-json")
                )
    return rows, problems


def _read_json(path: Path) -> tuple[list[Row], list[RowProblem]]:
    text, problems = _decode(path.read_bytes(), path)
    if not text.strip():
        return [], problems
    try:
        document = json.loads(text, parse_constant=_reject_nan)
    except ValueError as error:
        line = getattr(error, "lineno", None) or _nan_line(text)
        code = "invalid-json" if isinstance(error, json.JSONDecodeError) else "nan"
        return [], [*problems, RowProblem(str(path), line, _json_message(error), code=code)]
    except RecursionError:
        return [], [
            *problems,
            RowProblem(str(path), 1, "invalid JSON: nested too deeply", code="invalid-json"),
        ]
    if isinstance(document, dict):
        # {"column": [values...]} records, or a single record
        if document and all(isinstance(value, list) for value in document.values()):
            lengths = {len(value) for value in document.values()}
            if len(lengths) > 1:
                message = f"columns have different lengths {sorted(lengths)}; expected equal-length lists"
                return [], [*problems, RowProblem(str(path), 1, message, code="ragged-columns")]
            keys = list(document)
            document = [{key: document[key][i] for key in keys} for i in range(lengths.pop())]
            return [Row(i + 1, item) for i, item in enumerate(document)], problems
        return [Row(1, document)], problems
    if not isinstance(document, list):
        message = f"expected a JSON array of records, got a {type(document).__name__}"
        return [], [*problems, RowProblem(str(path), 1, message, code="not-an-array")]
    # Line numbers for a JSON array: the line where each top-level element starts.
    starts = _array_element_lines(text)
    return [Row(starts[i] if i < len(starts) else 1, item) for i, item in enumerate(document)], problems


def _nan_line(text: str) -> int:
    match = re.search(r"(?<![\w\"])-?(NaN|Infinity)\b", text)
    return text[: match.start()].count("\n") + 1 if match else 1


def _array_element_lines(text: str) -> list[int]:
    """The 1-based line on which each element of a top-level JSON array starts."""
    lines: list[int] = []
    depth, line, in_string, escape, expecting = 0, 1, False, False, False
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
        if depth == 1 and expecting and not char.isspace() and char not in ",]":
            lines.append(line)
            expecting = False
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth == 1:
                expecting = True
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 1:
            expecting = True
    return lines


def _read_delimited(path: Path, delimiter: str) -> tuple[list[Row], list[RowProblem]]:
    """CSV (quoted fields) or TSV (no quoting, as most TSV exports, e.g. SMS spam). A row whose field count
    differs from the header's is a problem at its line."""
    text, problems = _decode(path.read_bytes(), path)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows: list[Row] = []
    header: list[str] | None = None
    last_line = 0
    try:
        for record in reader:
            start, last_line = last_line + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header = [name.strip() for name in record]
                duplicated = sorted({name for name in header if header.count(name) > 1})
                if duplicated:
                    message = f"the header repeats column names: {', '.join(duplicated)}"
                    problems.append(RowProblem(str(path), start, message, code="bad-header"))
                continue
            if len(record) != len(header):
                problems.append(
                    RowProblem(
                        str(path),
                        start,
                        f"has {len(record)} field{'s' if len(record) != 1 else ''}, the header has {len(header)}"
                        + (" (a stray delimiter or unbalanced quote?)" if len(record) > len(header) else ""),
                        code="field-count",
                    )
                )
                continue
            rows.append(Row(start, dict(zip(header, record, strict=True))))
    except csv.Error as error:
        problems.append(RowProblem(str(path), reader.line_num, f"cannot parse: {error}", code="invalid-csv"))
    return rows, problems


def _read_parquet(path: Path) -> list[Row]:
    """Parquet rows; `line` is the 1-based record number."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file: {error}") from None
    return [Row(i + 1, record) for i, record in enumerate(table.to_pylist())]


def _datasets_rows(dataset: Any) -> list[Row]:
    if hasattr(dataset, "keys"):  # a DatasetDict: take its train split
        dataset = dataset["train"] if "train" in dataset else dataset[next(iter(dataset.keys()))]
    return [Row(i + 1, record) for i, record in enumerate(dataset)]


def _read_datasets_folder(path: Path) -> list[Row]:
    """A folder written by `datasets`' save_to_disk; `line` is the 1-based record number."""
    if not any((path / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")):
        raise DataError(
            f"{path}: a folder, but not a datasets folder (no dataset_info.json or dataset_dict.json)",
            hint="point at a data file, or save the dataset with `dataset.save_to_disk(folder)`",
        )
    from datasets import load_from_disk

    try:
        return _datasets_rows(load_from_disk(str(path)))
    except Exception as error:  # datasets raises many types for broken folders
        raise DataError(f"{path}: cannot load the datasets folder: {error}") from None


def _read_hub_dataset(dataset_id: str) -> list[Row]:
    """A Hugging Face Hub dataset id (its train split); needs a network or a local cache."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise DataError(
            f"`{dataset_id}` looks like a Hub dataset id, but `datasets` is not installed"
        ) from None
    try:
        import datasets
        import huggingface_hub

        datasets.utils.logging.set_verbosity_error()  # no retry chatter: the error below says it all
        huggingface_hub.utils.logging.set_verbosity_error()
        return _datasets_rows(load_dataset(dataset_id, split="train"))
    except Exception as error:  # offline, unknown id, gated: all end the same way for the user
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"`{dataset_id}` is not a local file, and loading it as a Hub dataset failed: {first}",
            hint="check the path or the dataset id; without a network, save the dataset with save_to_disk "
            "(or export .jsonl) and point at that",
        ) from None
