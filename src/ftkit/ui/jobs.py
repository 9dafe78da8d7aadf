"""Background jobs: `ftkit tune` and `ftkit rerun` started by the UI exactly as a person would run them.

A job is the command `python -m ftkit tune DATA --model M --method X ... --registry R --json` (or `rerun RUN`)
started detached (its own session, so Ctrl-C on the server does not reach it and it outlives the server), in the
server's working folder (so its `outputs/` land where `ftkit tune` run there would put them), its stdout and
stderr written to `<ui home>/jobs/<job id>/{stdout,stderr}.log`. `job.json` in that folder records the id, the
process {host, pid, pid_start}, the command, when it started and what it trains.

The run a job records is the registry run whose `process` is the job's process (lifecycle.start records the
process that commits the run, which is the job's own). A job's status is its run's final status (succeeded,
failed, interrupted) once the run has one; before that `running` while its process lives; a process that ended
without a final run record is `interrupted` when it was stopped, `succeeded` on exit 0, else `failed`. All of it is
read from disk and the registry, so a restarted server knows the jobs of the one before.

Stopping sends SIGTERM to the job's process (as `kill PID` would); the runner takes it as Ctrl-C and records the run as
interrupted with what was saved (cli/_run_life.py). A job stopped before its run started (while planning) ends
with no run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftkit.errors import ExitCode, UsageError
from ftkit.registry import processes
from ftkit.ui.errors import NotFound
from ftkit.ui.settings import UiSettings, ui_home

FOLDER = "jobs"
JOB_ID = re.compile(r"^job-\d{8}-\d{6}-[0-9a-f]{6}\Z")
FINAL = ("succeeded", "failed", "interrupted")
LOG_LINES = 40
STOPPED_CODES = (ExitCode.INTERRUPTED, -signal.SIGTERM, -signal.SIGINT)
_children: dict[int, subprocess.Popen] = {}  # pid -> the jobs this server process started (reaped on poll)


def jobs_root(settings: UiSettings) -> Path:
    """The folder of every job's folder."""
    return settings.home / FOLDER


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, partial = tempfile.mkstemp(prefix=".job-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


def ensure_registry(settings: UiSettings) -> None:
    """Create the served registry on the UI's first write (an upload, a job), and move the server's state file
    from the folder it used before into the new `.git/ftkit-ui`, so the UI's home stays one folder from then on.
    Reading never creates it."""
    if (settings.registry / ".git").is_dir():
        return
    from ftkit.registry.store import RunRegistry

    before = ui_home(settings.registry)
    RunRegistry.open(settings.registry, create=True).close()
    after = ui_home(settings.registry)
    if before != after and before.is_dir():
        after.mkdir(parents=True, exist_ok=True)
        for entry in before.iterdir():
            with contextlib.suppress(OSError):  # another request moving it at the same moment
                os.replace(entry, after / entry.name)
        with contextlib.suppress(OSError):
            before.rmdir()


def start_job(settings: UiSettings, args: list[str], facts: dict[str, Any]) -> dict[str, Any]:
    """Start `python -m ftkit ARGS --registry R --json` detached; returns the recorded job (job.json)."""
    ensure_registry(settings)
    job_id = f"job-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    folder = jobs_root(settings) / job_id
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "ftkit", *args, "--registry", str(settings.registry), "--json"]
    with (folder / "stdout.log").open("wb") as out, (folder / "stderr.log").open("wb") as err:
        child = subprocess.Popen(  # noqa: S603 - an argument list, no shell
            command,
            cwd=Path.cwd(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    _children[child.pid] = child
    job = {
        "id": job_id,
        **facts,
        "process": {"host": processes.host(), "pid": child.pid, "pid_start": processes.start_time(child.pid)},
        "pid": child.pid,
        "argv": command,
        "command": shlex.join(["ftkit", *command[3:]]),
        "cwd": str(Path.cwd()),
        "started_at": _now(),
        "run_id": None,
        "stop_requested_at": None,
    }
    _write_json(folder / "job.json", job)
    return job


def load_job(settings: UiSettings, job_id: str) -> dict[str, Any]:
    """The recorded job `job_id` (job.json); NotFound when there is none."""
    path = jobs_root(settings) / job_id / "job.json"
    try:
        if not JOB_ID.match(job_id):
            raise OSError
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NotFound(f"no job {job_id!r}", hint="GET /api/jobs lists the jobs") from None


def job_ids(settings: UiSettings) -> list[str]:
    """Every job's id, newest first."""
    root = jobs_root(settings)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if JOB_ID.match(p.name)), reverse=True)


def _alive(job: dict[str, Any]) -> bool:
    """Whether the job's process still runs (a child of this server is reaped here)."""
    child = _children.get(job["pid"])
    if child is not None and child.poll() is not None:
        return False
    return processes.alive(job["process"]) is True


def _returncode(job: dict[str, Any]) -> int | None:
    child = _children.get(job["pid"])
    return None if child is None else child.poll()


def _runs_by_process(settings: UiSettings) -> dict[tuple[str, int, str | None], dict[str, Any]]:
    """{(host, pid, pid_start): run summary} of the registry's runs (none before the registry exists)."""
    from ftkit.errors import RegistryError
    from ftkit.registry.store import RunRegistry

    if not (settings.registry / ".git").is_dir():
        return {}
    try:
        with RunRegistry.open(settings.registry, create=False) as registry:
            summaries = registry.summaries()
    except RegistryError:  # no run yet (no history)
        return {}
    found = {}
    for run in summaries:
        process = run.get("process") or {}
        if isinstance(process.get("pid"), int):
            found[(process.get("host"), process["pid"], process.get("pid_start"))] = run
    return found


def _log_tail(path: Path, lines: int = LOG_LINES) -> list[str]:
    """The last lines of a log; progress bars' carriage-return redraws are separate lines."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in re.split(r"[\r\n]+", text) if line.strip()][-lines:]


def _result(folder: Path) -> dict[str, Any] | None:
    """The command's --json document (stdout), once it has printed it."""
    with contextlib.suppress(OSError, ValueError):
        text = (folder / "stdout.log").read_text(encoding="utf-8").strip()
        if text:
            value = json.loads(text)
            return value if isinstance(value, dict) else None
    return None


def describe(settings: UiSettings, job: dict[str, Any], runs: dict | None = None) -> dict[str, Any]:
    """The job with its status, run id, return code and log tail (see the module's docstring for the rules)."""
    folder = jobs_root(settings) / job["id"]
    alive = _alive(job)  # before the registry is read: a process that exited committed its run before it did
    process = job["process"]
    runs = _runs_by_process(settings) if runs is None else runs
    run = runs.get((process["host"], process["pid"], process.get("pid_start")))
    result = None if alive else _result(folder)
    if run is None and result is not None and isinstance(result.get("run_id"), str):
        run = next((r for r in runs.values() if r.get("id") == result["run_id"]), None)
    returncode = _returncode(job)
    if run is not None and run.get("status") in FINAL:
        status = run["status"]
    elif alive:
        status = "running"
    elif job.get("stop_requested_at") or returncode in STOPPED_CODES:
        status = "interrupted"
    else:
        status = "succeeded" if returncode == 0 else "failed"
    if run is not None and job.get("run_id") != run["id"]:
        job["run_id"] = run["id"]
        with contextlib.suppress(OSError):
            _write_json(folder / "job.json", job)
    error = (result or {}).get("error")
    return {
        **{key: value for key, value in job.items() if key != "argv"},
        "status": status,
        "run_status": None if run is None else run.get("status"),
        "returncode": returncode,
        "error": error if isinstance(error, (dict, str)) else None,
        "log_tail": _log_tail(folder / "stderr.log"),
    }


def list_jobs(settings: UiSettings) -> list[dict[str, Any]]:
    """Every job, newest first, described."""
    runs = _runs_by_process(settings)
    jobs = []
    for job_id in job_ids(settings):
        with contextlib.suppress(NotFound):
            jobs.append(describe(settings, load_job(settings, job_id), runs))
    return jobs


def stop_job(settings: UiSettings, job_id: str) -> dict[str, Any]:
    """SIGTERM to the job's process (the runner records its run as interrupted); UsageError when the job is not
    running."""
    job = load_job(settings, job_id)
    if describe(settings, job)["status"] != "running":  # its run may be recorded while its process exits
        raise UsageError(f"job {job_id} is not running", hint="GET /api/jobs/{id} says how it ended")
    job["stop_requested_at"] = _now()
    _write_json(jobs_root(settings) / job_id / "job.json", job)
    # The job's process only, not its process group: the group holds the git helpers the runner records the run
    # with, and a SIGTERM to them breaks that very commit (the run's record is then left pending).
    with contextlib.suppress(ProcessLookupError):
        os.kill(job["pid"], signal.SIGTERM)
    return describe(settings, job)
