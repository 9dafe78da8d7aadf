"""Whether a `running` run still runs: its heartbeat file and its process (lifecycle.py says what `lost` means).

A running `ftkit run` writes `.git/ftkit-heartbeats/<run-id>` (its process, as JSON) and touches it every
HEARTBEAT_EVERY_S seconds from a daemon thread: liveness costs no git commit, and the file dies with nothing but
its mtime when the process is killed. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

from ftkit.registry import processes

HEARTBEAT_EVERY_S = 30.0
LOST_AFTER_S = 600.0
FOLDER = "ftkit-heartbeats"


def heartbeat_path(root: Path, run_id: str) -> Path:
    """The heartbeat file of run `run_id` in the registry at `root`."""
    return Path(root) / ".git" / FOLDER / run_id


class Heartbeat:
    """Touches a run's heartbeat file every `every` seconds until `stop()`; never fails the run (a read-only
    registry simply has no heartbeat, and its runs are judged by their process alone)."""

    def __init__(self, root: Path, run_id: str, every: float = HEARTBEAT_EVERY_S):
        self.path = heartbeat_path(root, run_id)
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """Write the file now and keep touching it."""
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(exist_ok=True)
            self.path.write_text(json.dumps(processes.identity()))
        self._thread = threading.Thread(target=self._beat, name="ftkit-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def stop(self) -> None:
        """Stop touching (the file stays until the run's final commit removes it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def stop_heartbeat(root: Path, run_id: str) -> None:
    """Remove a run's heartbeat file (its run is finished or recorded as lost)."""
    with contextlib.suppress(OSError):
        heartbeat_path(root, run_id).unlink()


def heartbeat_age(root: Path, run_id: str, now: float | None = None) -> float | None:
    """Seconds since the run's heartbeat was last touched; None without a heartbeat file."""
    try:
        touched = heartbeat_path(root, run_id).stat().st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - touched)


def lost_reason(root: Path, run: dict, lost_after: float = LOST_AFTER_S) -> str | None:
    """Why the run (its run.json) is lost, or None while it runs (or is not `running`, or cannot be judged)."""
    if run.get("status") != "running":
        return None
    process = run.get("process") or {}
    if processes.alive(process) is False:
        return f"its process (pid {process.get('pid')} on {process.get('host')}) is gone"
    age = heartbeat_age(root, str(run.get("id")))
    if age is not None and age > lost_after:
        return (
            f"no heartbeat for {age / 60:.0f} min (process pid {process.get('pid')} on {process.get('host')})"
        )
    return None
