"""sha256 of files and folders, shared by the data fingerprints and the registry's artifact store.

It sits at the top of the package, beside `errors`, so `data` and `registry` both use it without importing each
other; it imports only the standard library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


def iter_chunks(path: str | Path) -> Iterator[bytes]:
    """The bytes of a file in CHUNK-sized blocks."""
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file; of a folder, every file's relative path then bytes, sorted by path.

    A single file hashes to exactly its bytes (what `sha256sum` prints), so the artifact store can name files by it.
    """
    digest = hashlib.sha256()
    target = Path(path)
    if target.is_dir():
        for file in sorted(p for p in target.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(target)).encode())
            for block in iter_chunks(file):
                digest.update(block)
    else:
        for block in iter_chunks(target):
            digest.update(block)
    return digest.hexdigest()
