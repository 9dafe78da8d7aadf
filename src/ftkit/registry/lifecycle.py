"""A run's life in the registry: committed as `running` before the model loads, updated while it trains, finished.

    start(record)            commits runs/<id>/ with status `running`: recipe, overrides, environment, the process
                             {host, pid, pid_start} (processes.py), started_at; resolved.yaml once known
    update(run_id, **facts)  one commit that changes only that run's folder: last_checkpoint {step, path},
                             resolved (resolved.yaml), config_hash, tracking {mlflow: {run_id, ...}}, ... (FACTS)
    finish(record)           replaces the folder with the final record (succeeded, failed, interrupted) and its
                             artifacts; a run not yet in the registry is added. What an update recorded and the
                             final record leaves out (last_checkpoint, process, tracking) is carried over.
    resume(run_id)           an interrupted, failed or lost run is `running` again, under the same id

Every commit touches one run's folder only and goes through the registry's compare-and-swap publish, so any
number of processes record at once. A finished run is never replaced (a second finish raises).

Liveness (liveness.py): a running process touches `.git/ftkit-heartbeats/<run-id>` every 30 s from a daemon
thread (no git commit). A `running` run is `lost` when its process is dead on this host (pid gone, or
reused: its start time differs) or its heartbeat is older than 10 minutes (from any host that shares
the folder). A run from another host with no heartbeat file here cannot be judged and stays `running`. Listings
show such a run as `lost` at once (`overlay`); `notice_lost` records the status `lost` (one commit per run, once)
and is called by `ftkit registry repair` and by every command that opens the registry (cli/_pending.py). A run
whose final record is pending (pending.py) is not lost: its record is on the way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftkit.errors import RegistryError
from ftkit.registry import diff as diffing
from ftkit.registry import gitops, liveness, pending, processes, records, scrub, testpoints
from ftkit.registry.liveness import Heartbeat, stop_heartbeat

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

__all__ = ["FACTS", "Heartbeat", "finish", "mark_lost", "merge_runs", "notice_lost", "overlay", "resume",
           "start", "update"]  # fmt: skip

RESUMABLE = ("interrupted", "failed", "lost")
# keys of run.json an update may set
_RUN_FACTS = ("last_checkpoint", "config_hash", "process", "output_dir", "tracking")
_FILE_FACTS = {"resolved": "resolved.yaml", "env": "env.json", "data": "data.json", "metrics": "metrics.json"}
FACTS = (*_RUN_FACTS, *_FILE_FACTS)
_RANK = {"running": 0, "lost": 1}  # finished statuses rank 2: a merge keeps the furthest state (merge_runs)


# -- the commits -----------------------------------------------------------------------------------------------


def start(registry: RunRegistry, record: records.RunRecord) -> str:
    """Commit `record` as a `running` run (this process unless `record.process` names another); returns the
    commit. RegistryError when the run id is already in the registry."""
    record.status = "running"
    record.process = record.process or processes.identity()
    return _record(registry, record, [], starting=True)


def finish(registry: RunRegistry, record: records.RunRecord, artifacts: list[dict] | None = None) -> str:
    """Commit the final record of a run (replacing its `running` or `lost` folder, or adding it); returns the
    commit. Files of `record.output_dir` go to the weights store unless `artifacts` lists them already stored."""
    records.validate(record)
    if record.status not in records.FINAL_STATUSES:
        raise RegistryError(
            f"run {record.run_id}: finish needs a final status, not {record.status!r}",
            hint=f"use one of {', '.join(records.FINAL_STATUSES)}",
        )
    if artifacts is None:
        artifacts = []
        if record.output_dir and Path(record.output_dir).is_dir():
            artifacts = registry.store.put_tree(Path(record.output_dir))
    with testpoints.inside("registry-commit"):
        commit = _record(registry, record, artifacts, starting=False)
    stop_heartbeat(registry.root, record.run_id)
    return commit


def _record(registry: RunRegistry, record: records.RunRecord, artifacts: list[dict], starting: bool) -> str:
    records.validate(record)
    if not record.name:
        record.name = registry.new_run_name(record.run_id)
    env_values = scrub.env_secret_values()
    repo = registry.repo
    base: list[gitops.Entry | None] = []
    written: dict[str, Any] = {}

    def change(root: gitops.Entries) -> gitops.Entries:
        existing = gitops.subtree(repo, root, "runs").get(record.run_id)
        if existing is not None:
            run = _run_json(repo, existing.sha, record.run_id)
            if starting or run.get("status") in records.FINAL_STATUSES:
                raise RegistryError(
                    f"run {record.run_id} is already in the registry"
                    + ("" if starting else f" as {run.get('status')}"),
                    hint="use a new run id",
                )
            record.last_checkpoint = record.last_checkpoint or run.get("last_checkpoint")
            record.process = record.process or run.get("process") or {}
            record.tracking = record.tracking or run.get("tracking") or {}
        files, run = records.render(record, artifacts, records.now_iso(), env_values)
        folder = _write_folder(repo, files)
        written.update(tree=folder, run=run, metrics=json.loads(files["metrics.json"]))
        base[:] = [root.get("runs")]
        return gitops.with_child(repo, root, "runs", record.run_id, gitops.Entry.tree(record.run_id, folder))

    commit = registry.publish(
        change,
        lambda: records.commit_message(record, written["run"], env_values),
        f"ftkit: {'start' if starting else 'record'} run {record.run_id}",
    )
    registry.remember_run(base[0] if base else None, record.run_id, written)
    return commit


def update(registry: RunRegistry, run_id: str, **facts: Any) -> str:
    """One commit changing only the folder of the running run `run_id`: each fact (FACTS) set; returns the commit.
    RegistryError when the run is not in the registry or not running; ValueError for a fact it does not know."""
    unknown = sorted(set(facts) - set(FACTS))
    if unknown:
        raise ValueError(f"unknown run facts {', '.join(unknown)}; known: {', '.join(FACTS)}")
    return _change_run(
        registry, run_id, ("running",), facts, "running", "updated " + ", ".join(sorted(facts))
    )


def resume(registry: RunRegistry, run_id: str) -> dict:
    """Make the interrupted, failed or lost run `run_id` `running` again in this process; returns its new run.json.
    RegistryError when it is running or succeeded."""
    _change_run(registry, run_id, RESUMABLE, {"process": processes.identity()}, "running", "resumed")
    return _run_json(registry.repo, _folder(registry.repo, registry.snapshot()[1], run_id).sha, run_id)


def mark_lost(registry: RunRegistry, run_id: str, process: dict, reason: str) -> bool:
    """Record `run_id` as `lost` (`reason`) if it is still running in `process`; whether a commit was made."""
    before = registry.head
    extra = {"lost": {"reason": reason, "noticed_at": records.now_iso(), "noticed_by": processes.host()}}
    try:
        commit = _change_run(registry, run_id, ("running",), extra, "lost", f"lost: {reason}", process)
    except RegistryError:
        return False  # finished or resumed meanwhile: nothing to mark
    stop_heartbeat(registry.root, run_id)
    return commit != before


def _change_run(
    registry: RunRegistry,
    run_id: str,
    allowed: tuple[str, ...],
    facts: dict[str, Any],
    status: str,
    what: str,
    process: dict | None = None,
) -> str:
    repo = registry.repo
    env_values = scrub.env_secret_values()
    clean = lambda value: scrub.scrub_data(records.json_safe(value), env_values)  # noqa: E731
    name: list[str] = []

    def change(root: gitops.Entries) -> gitops.Entries:
        folder = _folder(repo, root, run_id).sha
        files, run = gitops.read_tree(repo, folder), _run_json(repo, folder, run_id)
        if run.get("status") not in allowed:
            raise RegistryError(
                f"run {run_id} is {run.get('status')}; this needs a run that is {' or '.join(allowed)}",
                hint="`ftkit show RUN` shows its status",
            )
        if process is not None and run.get("process") != process:
            return root  # resumed by another process meanwhile
        name[:] = [run.get("name") or ""]
        blobs = dict(files)
        for key, value in facts.items():
            if key in _FILE_FACTS:
                blobs[_FILE_FACTS[key]] = _fact_file(repo, run_id, key, value, env_values)
            else:
                run[key] = clean(value)
        if status == "running":
            run.pop("lost", None)
        run["status"] = status
        run["updated_at"] = records.now_iso()
        blobs["run.json"] = gitops.Entry.blob(
            "run.json", gitops.write_blob(repo, records.dumps(run).encode())
        )
        tree = gitops.write_tree(repo, blobs.values())
        return gitops.with_child(repo, root, "runs", run_id, gitops.Entry.tree(run_id, tree))

    def message() -> str:
        return f"run {run_id} {name[0]}: {what}\n\nFtkit-Run: {run_id}\nFtkit-Status: {status}\n"

    return registry.publish(change, message, f"ftkit: update run {run_id}")


def _fact_file(repo: Any, run_id: str, key: str, value: Any, env_values: list[str]) -> gitops.Entry:
    """The file entry of a file fact (resolved.yaml, env.json, data.json, metrics.json), secrets scrubbed."""
    from ftkit import yamlio  # PyYAML only for writing and loading runs, never for listing them

    clean = scrub.scrub_data(yamlio.normalize(value), env_values)
    if key == "resolved":
        text = yamlio.dump(clean or {}, header=f"resolved recipe of run {run_id}")
    else:
        text = records.dumps(diffing.flatten(clean or {}) if key == "metrics" else clean)
    name = _FILE_FACTS[key]
    return gitops.Entry.blob(name, gitops.write_blob(repo, text.encode("utf-8")))


def _folder(repo: Any, root: gitops.Entries, run_id: str) -> gitops.Entry:
    entry = gitops.subtree(repo, root, "runs").get(run_id)
    if entry is None:
        raise RegistryError(f"run {run_id} is not in the registry", hint="`ftkit runs --all` lists runs")
    return entry


def _run_json(repo: Any, folder: str, run_id: str) -> dict:
    files = gitops.read_tree(repo, folder)
    try:
        run = json.loads(gitops.read_object(repo, files["run.json"].sha, b"blob"))
    except (KeyError, ValueError) as error:
        raise RegistryError(
            f"run {run_id}: run.json cannot be read", hint="`ftkit registry verify` lists the damage"
        ) from error
    return run if isinstance(run, dict) else {}


def _write_folder(repo: Any, files: dict[str, bytes]) -> str:
    return gitops.write_tree(
        repo, (gitops.Entry.blob(name, gitops.write_blob(repo, data)) for name, data in files.items())
    )


# -- lost runs ---------------------------------------------------------------------------------------------------


def _lost(registry: RunRegistry, run: dict, kept: set[str] | None) -> str | None:
    reason = liveness.lost_reason(registry.root, run)
    if reason is None:
        return None
    if kept is None:
        kept = {path.stem for path in pending.find(registry.root)}
    return None if str(run.get("id")) in kept else reason


def overlay(registry: RunRegistry, summaries: list[dict]) -> None:
    """Show each `running` summary whose process is gone as `lost` (with `lost.reason`), in place; no commit."""
    running = [s for s in summaries if s.get("status") == "running"]
    kept = {path.stem for path in pending.find(registry.root)} if running else set()
    for summary in running:
        reason = _lost(registry, summary, kept)
        if reason is not None:
            summary["status"] = "lost"
            summary["lost"] = {"reason": reason, "noticed_at": None}


def notice_lost(registry: RunRegistry) -> list[str]:
    """Record every `running` run whose process is gone as `lost` (one commit each, once); one line per run.
    A registry that cannot be written is left as it is (listings still show the runs as lost)."""
    import git

    seen = [s for s in registry.summaries() if s.get("status") == "lost" and not s["lost"].get("noticed_at")]
    lines = []
    for run in seen:  # shown as lost by `overlay`, still `running` in the registry
        reason = run["lost"]["reason"]
        try:
            marked = mark_lost(registry, run["id"], run.get("process") or {}, reason)
        except (RegistryError, OSError, git.GitError):
            continue
        if marked:
            checkpoint = run.get("last_checkpoint") or {}
            where = f"; last checkpoint: step {checkpoint.get('step')}" if checkpoint else "; no checkpoint"
            lines.append(f"run {run['id']} ({run.get('name')}) recorded as lost: {reason}{where}")
    return lines


# -- merging (sync.py) -------------------------------------------------------------------------------------------


def merge_runs(repo: Any, ours: gitops.Entries, theirs: gitops.Entries) -> tuple[gitops.Entries, list[str]]:
    """The union of two `runs/` folders, and the ids of runs whose folder came from `theirs` though we had one.
    A run on both sides keeps its furthest state: finished over lost over running, then the later commit
    (`committed_at`, `updated_at`); ours on a tie."""
    merged = {**theirs, **ours}
    updated = []
    for run_id in sorted(set(ours) & set(theirs)):
        if ours[run_id].sha == theirs[run_id].sha:
            continue
        if _progress(repo, theirs[run_id], run_id) > _progress(repo, ours[run_id], run_id):
            merged[run_id] = theirs[run_id]
            updated.append(run_id)
    return merged, updated


def _progress(repo: Any, entry: gitops.Entry, run_id: str) -> tuple[int, str]:
    try:
        run = _run_json(repo, entry.sha, run_id)
    except RegistryError:
        return (-1, "")
    when = max(str(run.get("committed_at") or ""), str(run.get("updated_at") or ""))
    return (_RANK.get(str(run.get("status")), 2), when)
