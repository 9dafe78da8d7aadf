"""Ways to damage a real registry the way disks, crashes and hand edits do, using git and the file system only."""

from __future__ import annotations

import os
import shutil
import stat
import zlib
from pathlib import Path

from tests.registry.conftest import git


def object_path(root: Path, sha: str) -> Path:
    """The loose object file of `sha` in the registry at `root`."""
    return Path(root) / ".git" / "objects" / sha[:2] / sha[2:]


def file_sha(root: Path, run_id: str, name: str, rev: str = "main") -> str:
    """The blob sha of `runs/<run_id>/<name>` at `rev`, as git reads it."""
    return git(Path(root), "rev-parse", f"{rev}:runs/{run_id}/{name}").strip()


def break_object(root: Path, sha: str, how: str = "delete") -> Path:
    """Damage a loose object: delete it, overwrite it with bytes that are not a zlib stream (`"garbage"`), or
    with a well-formed blob of other content (`"tamper"`: what a bit flip git does not notice on read looks like)."""
    path = object_path(root, sha)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    if how == "delete":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"this is not a git object\x00\xff" * 8)
    else:
        body = b"{not json"
        path.write_bytes(zlib.compress(b"blob %d\x00" % len(body) + body))
    return path


def drop_cache(root: Path) -> None:
    """Remove the summaries cache, so the next read goes to git (a fresh clone, another machine)."""
    shutil.rmtree(Path(root) / ".git" / "ftkit-cache", ignore_errors=True)


def break_run_file(root: Path, run_id: str, name: str, how: str = "delete") -> str:
    """Damage one file of one run and clear the cache; returns the damaged blob's sha."""
    sha = file_sha(root, run_id, name)
    break_object(root, sha, how)
    drop_cache(root)
    return sha
