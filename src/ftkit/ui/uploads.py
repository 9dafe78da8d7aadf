"""Uploaded training files: received in a stream, bounded in size, kept only under `<ui home>/uploads/<id>/`.

- The request body is counted as it arrives; past `settings.max_upload_bytes` (plus room for the multipart
  headers) the upload is refused with 413 and nothing of it is kept (Starlette's parser spools the part to a
  temporary file that is closed, so deleted, on the error). The rest of a refused body is read and dropped up to
  twice the limit, so the browser, done sending, reads the answer.
- The stored name is the file name the browser sent reduced to its last path component and to letters, digits,
  `.`, `-` and `_`, never starting with a dot: `../../x.jsonl` is stored as `x.jsonl`, `/etc/passwd` as `passwd`.
  The extension is kept, since the data readers choose the parser by it.
- The folder's name is a random id (the upload's id); the file is written under a temporary name and renamed into
  place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ftkit.errors import UsageError
from ftkit.ui.errors import NotFound
from ftkit.ui.settings import UiSettings

FOLDER = "uploads"
FIELD = "file"
HEADER_ROOM = 64 * 1024  # multipart boundaries and part headers around the file's bytes
NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}\Z")
MAX_NAME = 120


class TooLarge(Exception):
    """The request body passed the upload limit."""


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: the last path component, reduced to safe characters, extension
    kept (see the module's docstring)."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = NAME_CHARS.sub("_", base).lstrip(".")
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    ext = ext[:16]
    stem = stem.strip("_.")[: MAX_NAME - len(ext) - 1] or "upload"
    return f"{stem}.{ext}" if ext else stem


def uploads_root(settings: UiSettings) -> Path:
    """The folder every upload lives under."""
    return settings.home / FOLDER


def find_upload(settings: UiSettings, upload_id: str) -> Path:
    """The stored file of upload `upload_id`; NotFound for an id that is not one."""
    folder = uploads_root(settings) / upload_id
    files = (
        [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        if UPLOAD_ID.match(upload_id or "") and folder.is_dir()
        else []
    )
    if len(files) != 1:
        raise NotFound(f"no upload {upload_id!r}", hint="upload the file again")
    return files[0]


async def _drain(stream: AsyncIterator[bytes], total: int, cap: int) -> None:
    """Read and drop the rest of a refused body (up to `cap` bytes in all): a client still sending when the 413
    comes gets a broken pipe instead of the answer."""
    async for chunk in stream:
        total += len(chunk)
        if total > cap:
            return


async def _limited(stream: AsyncIterator[bytes], limit: int, cap: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            await _drain(stream, total, cap)
            raise TooLarge
        yield chunk


async def receive(request: Any, settings: UiSettings) -> dict[str, Any]:
    """Store the multipart request's `file` part; returns {id, name, path, bytes}. TooLarge past the limit;
    UsageError for a request that is not a multipart form with one file."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    limit = settings.max_upload_bytes
    cap = 2 * limit + HEADER_ROOM  # a refused body up to this size is read to its end before the 413
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + HEADER_ROOM:
        if int(declared) <= cap:
            await _drain(request.stream(), 0, cap)
        raise TooLarge
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UsageError(
            "an upload is a multipart/form-data request", hint=f"send the file in the `{FIELD}` field"
        )
    parser = MultiPartParser(
        request.headers, _limited(request.stream(), limit + HEADER_ROOM, cap), max_files=1, max_fields=4
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise UsageError(f"the upload is not a valid multipart form: {error.message}") from None
    try:
        part = form.get(FIELD)
        if part is None or isinstance(part, str):
            raise UsageError(f"the upload has no file in its `{FIELD}` field", hint="choose a file to upload")
        if part.size is not None and part.size > limit:
            raise TooLarge
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_store, settings, part.file, part.filename or "")
    finally:
        await form.close()


def _store(settings: UiSettings, source: Any, filename: str) -> dict[str, Any]:
    from ftkit.ui.jobs import ensure_registry

    ensure_registry(settings)  # the UI's folder is inside the registry's .git once it exists
    upload_id = secrets.token_hex(16)
    folder = uploads_root(settings) / upload_id
    folder.mkdir(parents=True)
    name = safe_name(filename)
    target = folder / name
    fd, partial = tempfile.mkstemp(prefix=".partial-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)
            size = handle.tell()
            handle.flush()
            os.fsync(handle.fileno())
        if size > settings.max_upload_bytes:  # a stream without a declared size is counted here too
            raise TooLarge
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {"id": upload_id, "name": name, "path": str(target), "bytes": size}
