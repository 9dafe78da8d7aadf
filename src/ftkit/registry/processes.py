"""Which process is this, is that one still alive, and which git locks did a dead ftkit process leave behind.

A process is named by {host, pid, pid_start}: `pid_start` is its start time from /proc/<pid>/stat (clock ticks
since boot), so a pid that was reused by a later process does not pass for the old one. Where /proc is missing,
a live pid is taken as the same process.

Writer notes: every ref update ftkit makes (gitops.compare_and_swap) is bracketed by a small file
`.git/ftkit-writers/<host>-<pid>-<n>.json` naming the process. git's lock files (`refs/heads/main.lock`) say
nothing about who made them; a lock that no process holds open, made while a writer note of a process that is now
dead on this host was in place, and unchanged a moment later, was left by that killed update and is safe to
remove at once (preflight.py), and the notes of dead processes go with it. Standard library only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

WRITERS = "ftkit-writers"
_counter = itertools.count()


def host() -> str:
    """This machine's host name."""
    return socket.gethostname()


def start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, as text), None without /proc or such a process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None  # field 22 of stat(5); fields[0] is field 3


def identity() -> dict:
    """{host, pid, pid_start} of this process."""
    pid = os.getpid()
    return {"host": host(), "pid": pid, "pid_start": start_time(pid)}


def alive(process: dict) -> bool | None:
    """Whether the process `process` ({host, pid, pid_start}) still runs; None when it cannot be told from here
    (another host, or no pid)."""
    pid = process.get("pid")
    if process.get("host") != host() or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
        if state[state.rfind(")") + 2 :].split()[0] in ("Z", "X"):  # killed, not yet reaped by its parent
            return False
    except (OSError, IndexError):
        pass
    started = process.get("pid_start")
    now = start_time(pid)
    return not (started and now and started != now)  # a different start time: the pid was reused


@contextlib.contextmanager
def writing(git_dir: Path) -> Iterator[None]:
    """A writer note in `git_dir` while the block (one ref update) runs; a note that cannot be written is skipped
    (the update itself then reports the read-only or full disk)."""
    folder = Path(git_dir) / WRITERS
    path = folder / f"{host()}-{os.getpid()}-{next(_counter)}.json"
    try:
        folder.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(identity()))
        os.replace(tmp, path)
    except OSError:
        path = None
    try:
        yield
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


def writer_notes(git_dir: Path) -> list[tuple[Path, dict, float]]:
    """(path, process, mtime) of every writer note in `git_dir`."""
    found = []
    try:
        paths = [p for p in (Path(git_dir) / WRITERS).iterdir() if p.suffix == ".json"]
    except OSError:
        return []
    for path in paths:
        try:
            process = json.loads(path.read_text())
            found.append((path, process if isinstance(process, dict) else {}, path.stat().st_mtime))
        except (OSError, ValueError):
            continue
    return found


def dead_writer_of(git_dir: Path, lock_mtime: float) -> dict | None:
    """The process of a writer note whose process is dead on this host and that was in place when a lock of
    mtime `lock_mtime` was made; None when there is none, or when a live ftkit writer is at work right now."""
    states = [(process, mtime, alive(process)) for _, process, mtime in writer_notes(git_dir)]
    if any(state is True for *_, state in states):
        return None  # a live writer may own the lock: wait for it
    dead = [process for process, mtime, state in states if state is False and mtime <= lock_mtime + 1.0]
    return dead[0] if dead else None


def clear_dead_notes(git_dir: Path) -> None:
    """Remove the writer notes of processes that are dead on this host (each brackets one ref update only)."""
    for path, process, _ in writer_notes(git_dir):
        if alive(process) is False:
            with contextlib.suppress(OSError):
                path.unlink()
