"""Fingerprints of data files: path, sha256 and row count, recorded with every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.hashing import file_sha256


def fingerprint(source: Path | str, rows: int) -> dict[str, Any]:
    """Path, sha256 and row count of a local file or folder; a Hub dataset id has no local bytes to hash."""
    if Path(source).exists():
        return {"path": str(source), "sha256": file_sha256(source), "rows": rows}
    return {"path": str(source), "sha256": None, "rows": rows, "source": "hub"}
