"""Where ftkit may write: never into a registry's own git directory or weights store, and checkout file names
that stay in the current folder whatever a run was called (run names arrive from other people via `pull`)."""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def protected_area(registry_root: str | Path, path: str | Path) -> Path | None:
    """The registry folder (`.git` or `objects`) that `path` is in or is, else None. Both are resolved first,
    so `..` and symlinks cannot hide a write into them."""
    root = Path(registry_root).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    for area in (root / ".git", root / "objects"):
        if target == area or target.is_relative_to(area):
            return area
    return None


def safe_file_stem(name: str, fallback: str) -> str:
    """`name` as one file name in the current folder: characters outside [A-Za-z0-9._-] become '-', leading
    dots and dashes go (no hidden files, no options, no `..`); `fallback` (the run id) when nothing is left."""
    stem = _UNSAFE.sub("-", name).lstrip(".-")
    return stem or _UNSAFE.sub("-", fallback).lstrip(".-") or "run"
