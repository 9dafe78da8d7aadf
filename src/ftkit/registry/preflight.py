"""Check, before a run trains, that its registry can record it: the folder is writable and git is not locked.

A run that trains for an hour and then cannot be committed is lost, so `ftkit run` calls `check_registry_ready`
first. Git guards each ref and the config with a `<name>.lock` file; one left behind by a killed process blocks
every later commit. A lock left by an ftkit ref update whose process is dead on this host (killed: its writer
note says so, processes.py) is removed at once; any other lock older than `stale_after` seconds that no running
process holds open is removed too (and said so); a fresh or held one is waited for briefly, then reported with
its exact path. Stdlib only.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ftkit.errors import RegistryError
from ftkit.registry import processes

STALE_AFTER_S = 600.0
WAIT_S = 10.0
_SETTLE_S = 0.2  # a live git renames its lock within milliseconds; unchanged this long, it was left behind
# The locks a run commit takes (the branch ref, HEAD, config, packed refs) plus the index git may leave.
_LOCKS = ("refs/heads/main.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "index.lock")

__all__ = ["STALE_AFTER_S", "WAIT_S", "check_registry_ready", "remove_killed_writer_lock"]


def check_registry_ready(
    root: Path,
    *,
    stale_after: float = STALE_AFTER_S,
    wait: float = WAIT_S,
    poll: float = 0.2,
    note: Callable[[str], None] = lambda text: None,
) -> list[Path]:
    """Raise RegistryError (exit 2) when the registry at `root` cannot record a run; return the stale locks removed.

    `note` receives one human line per stale lock removed and when waiting for a live lock."""
    root = Path(root).absolute()
    _check_writable(root)
    git_dir = root / ".git"
    removed: list[Path] = []
    if not git_dir.is_dir():
        return removed
    deadline = time.monotonic() + wait
    announced: set[Path] = set()
    while True:
        live: list[Path] = []
        for lock in (git_dir / name for name in _LOCKS):
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue
            killed = _left_by_killed_writer(git_dir, lock)
            if killed is not None:
                try:
                    lock.unlink()
                except FileNotFoundError:
                    continue
                except OSError as error:
                    raise RegistryError(
                        f"git lock {lock}, left by a killed ftkit process, could not be removed: {error.strerror}",
                        hint=f"remove it by hand: rm {lock}",
                    ) from error
                removed.append(lock)
                note(f"removed git lock {lock} left by a killed process (pid {killed.get('pid')} is gone)")
            elif age >= stale_after and not _held_open(lock):
                try:
                    lock.unlink()
                except FileNotFoundError:
                    continue  # its owner finished meanwhile
                except OSError as error:
                    raise RegistryError(
                        f"stale git lock {lock} ({age / 60:.0f} min old) could not be removed: {error.strerror}",
                        hint=f"remove it by hand: rm {lock}",
                    ) from error
                removed.append(lock)
                note(f"removed stale git lock {lock} ({age / 60:.0f} min old, no process holds it)")
            else:
                live.append(lock)
        if not live:
            processes.clear_dead_notes(git_dir)
            return removed
        if time.monotonic() >= deadline:
            lock = live[0]
            raise RegistryError(
                f"the registry is locked: {lock} exists (another ftkit or git command is writing to it)",
                hint=f"wait for that command to finish; if none is running, remove the lock: rm {lock}",
                problems=[str(path) for path in live[1:]],
            )
        for lock in live:
            if lock not in announced:
                announced.add(lock)
                note(
                    f"waiting up to {wait:.0f} s for git lock {lock} (another command is writing the registry)"
                )
        time.sleep(poll)


def remove_killed_writer_lock(git_dir: Path, lock: Path) -> bool:
    """Remove `lock` when an ftkit ref update whose process is dead on this host left it (see
    `_left_by_killed_writer`); True when it was removed. Any writing command calls this when git refuses a ref
    update because of that lock, so a killed run does not block `ftkit tag` and the rest until the next run."""
    if _left_by_killed_writer(Path(git_dir), Path(lock)) is None:
        return False
    try:
        Path(lock).unlink()
    except OSError:
        return False
    processes.clear_dead_notes(Path(git_dir))
    return True


def _left_by_killed_writer(git_dir: Path, lock: Path) -> dict | None:
    """The process (dead on this host) whose ref update left `lock`, or None: the lock must be held open by no
    one, have been made while that process's writer note was in place (processes.py), and still be the same
    file a moment later (a live git renames its lock within milliseconds)."""
    try:
        before = lock.stat()
    except FileNotFoundError:
        return None
    killed = processes.dead_writer_of(git_dir, before.st_mtime)
    if killed is None or _held_open(lock):
        return None
    time.sleep(_SETTLE_S)
    try:
        after = lock.stat()
    except FileNotFoundError:
        return None
    same = (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    return killed if same and not _held_open(lock) else None


def _check_writable(root: Path) -> None:
    """Create and delete a file where the registry writes (its git folder, else the nearest existing folder)."""
    target = root / ".git" if (root / ".git").is_dir() else root
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        handle, name = tempfile.mkstemp(prefix=".ftkit-write-check-", dir=target)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        raise RegistryError(
            f"the registry cannot be written: {target}: {error.strerror or error}",
            hint="make that folder writable (or free space there), or pass --registry DIR / set FTKIT_REGISTRY",
        ) from error


def _held_open(lock: Path) -> bool:
    """Whether a running process has `lock` open (Linux /proc; elsewhere age alone decides)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    target = str(lock)
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            fds = list((pid / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return True
            except OSError:
                continue
    return False
