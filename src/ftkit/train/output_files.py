"""Writing a run's output folder so that it only ever holds complete files.

A save that fails half-way (a full disk, a read-only mount) must not leave partial files behind: the registry
stores the output folder as the run's artifacts, and a 0-byte `adapter_config.json` recorded as a run's weights
is worse than none. Each save writes into a staging folder inside the output folder and moves its files into
place only once the whole save succeeded — a rename on the same disk, which needs no space and never leaves half
a file. A failed save removes its staging folder and raises OutputWriteError naming the folder, the cause and
what to do (the run is then recorded as failed, without the partial files).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The registry never stores a folder with this prefix (artifacts.py); keep the two in step.
STAGING_PREFIX = ".ftkit-saving-"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Errors raised by native writers (safetensors, tokenizers) carry the OS message as text only.
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28", "os error 122")
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


class OutputWriteError(Exception):
    """A save into the output folder failed; the message names the folder, the cause and what to do."""


@contextmanager
def staged(output_dir: Path, what: str) -> Iterator[Path]:
    """A fresh staging folder inside `output_dir` to write `what` (e.g. "the trained model") into; its files move
    into `output_dir` when the block succeeds. On failure the staging folder is removed and a write error becomes
    OutputWriteError (other errors propagate unchanged)."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    except OSError as error:
        raise located(error, output_dir, what) from error
    try:
        yield staging
        _move_into(staging, output_dir)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception) and is_write_error(error):
            raise located(error, output_dir, what) from error
        raise
    shutil.rmtree(staging, ignore_errors=True)


def write_text(path: Path, text: str, what: str | None = None) -> None:
    """Write `path` whole or not at all (staged beside it, then moved into place)."""
    path = Path(path)
    with staged(path.parent, what or path.name) as folder:
        (folder / path.name).write_text(text, encoding="utf-8")


def is_write_error(error: BaseException) -> bool:
    """Whether `error` is the disk refusing a write (full, quota, read-only, permission), from Python or a
    native library."""
    if isinstance(error, OSError) and error.errno in (*_DISK_FULL, *_READ_ONLY):
        return True
    text = str(error)
    return any(marker in text for marker in _DISK_FULL_TEXT) or "Read-only file system" in text


def located(error: BaseException, output_dir: Path, what: str) -> OutputWriteError:
    """OutputWriteError for a failed write of `what` into `output_dir`: disk full (with the space left), or not
    writable, naming the file when the error does."""
    filename = getattr(error, "filename", None)
    where = f"{filename}" if filename else f"{output_dir}"
    cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    full = (isinstance(error, OSError) and error.errno in _DISK_FULL) or any(
        marker in str(error) for marker in _DISK_FULL_TEXT
    )
    if full:
        return OutputWriteError(
            f"disk full: cannot save {what} in {where} ({cause}; {_free(output_dir)} free there); no partial "
            "file was kept. Free space on that disk, or set `output` to a folder on a disk with room"
        )
    return OutputWriteError(
        f"cannot save {what} in {where}: {cause}; no partial file was kept. Make that folder writable, or set "
        "`output` to a writable folder"
    )


def _move_into(source: Path, target: Path) -> None:
    """Move every entry of `source` into `target`, merging into folders that already exist there."""
    for entry in sorted(source.iterdir()):
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _move_into(entry, destination)
        else:
            os.replace(entry, destination)


def _free(folder: Path) -> str:
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown space"
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    step = 0
    while free >= 1024 and step < len(units) - 1:
        free /= 1024
        step += 1
    return f"{free:.0f} bytes" if step == 0 else f"{free:.1f} {units[step]}"
