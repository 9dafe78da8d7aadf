"""Evaluation records: what `ftkit eval` measured, on which data, for which run, kept in the registry.

One record is one commit that only adds `evals/<group>/<eval-id>/`, published with the same compare-and-swap as
a run (RunRegistry.publish), so records and runs can be written by any number of processes at once. A record never
rewrites a run folder. `<group>` is the evaluated run's id, or `models` for a plain model (a folder, hub id or
GGUF that is not a registry run):

    evals/<run-id>/<eval-id>/eval.json        the record (below)
    evals/<run-id>/<eval-id>/artifacts.json   [{name, sha256, size, path}]: the per-row predictions, any judge
                                              transcript, stored in objects/ like a run's outputs
    evals/models/<eval-id>/…                  a record of a plain model

Grouping by run (rather than a flat `evals/<eval-id>/`) means `ftkit show RUN` reads only that run's records, and a
record whose eval.json is garbled is still known to belong to its run. `ftkit runs` never reads `evals/`: the
summary cache is keyed by the `runs/` tree, which a record leaves unchanged.

eval.json: {format, id, run (evaluated run id or null), model (what was evaluated: "run <id>" or the model
reference), base (the base model evaluated beside it, or null), data {path, name, sha256, rows, format},
settings {metrics, answer_regex, max_rows, max_new_tokens, judge, ...}, metrics (flat dotted keys), base_metrics
(flat, {} without a base), started_at, ended_at, committed_at, env (package versions)}. Everything is scrubbed of
secrets (scrub.py) before it is written; text files are stored scrubbed like a run's.

API (RunRegistry delegates to the functions here):

    record = EvalRecord(run=run_id, model=f"run {run_id}", data=data_fingerprint(path, rows=200, format="chat"),
                        settings={...}, metrics={"answer_match": 0.8}, base_metrics={"answer_match": 0.1}, ...)
    eval_id = registry.commit_eval(record, {"predictions.jsonl": Path(...)})   # RegistryError (exit 2) if bad
    registry.evals(run_id)          # that run's records, newest first (registry.evals(): every record)
    registry.load_eval("20250101")  # one record by id or unique id prefix, with its artifacts

A record that cannot be read whole is returned by `evals()` with a `damage` list ({file, object, problem}, as
for runs) and raises RegistryError from `load_eval`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftkit.errors import RegistryError
from ftkit.registry import damage, gitops, records, refs, scrub
from ftkit.registry import diff as diffing

if TYPE_CHECKING:
    import git

    from ftkit.registry.store import RunRegistry

FOLDER = "evals"
MODELS = "models"  # the group of records that evaluated a plain model, not a registry run
FORMAT_VERSION = 1
EVAL_FILES = ("eval.json", "artifacts.json")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(kw_only=True)
class EvalRecord:
    """One evaluation, as `commit_eval` records it. `metrics` and `base_metrics` may be nested (stored flat)."""

    data: dict  # {path, sha256, rows, format}: data_fingerprint() builds it
    metrics: dict
    run: str | None = None  # the evaluated run's id; None for a plain model
    model: str | None = None  # what was evaluated; "run <id>" when None and `run` is set
    base: str | None = None  # the base model evaluated beside it, or None
    base_metrics: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    env: dict = field(default_factory=dict)
    eval_id: str = ""  # filled in by commit_eval when empty


def data_fingerprint(path: str | Path, rows: int, format: str | None = None) -> dict:
    """The `data` of an EvalRecord for the file at `path`: its absolute path, name, sha256 of its bytes (what a
    run's data.json records), the rows evaluated and the data format."""
    from ftkit.hashing import file_sha256

    path = Path(path).absolute()
    return {"path": str(path), "name": path.name, "sha256": file_sha256(path), "rows": rows, "format": format}


def group_of(run: str | None) -> str:
    """The folder under evals/ that holds the records of `run` (None: a plain model)."""
    return MODELS if run is None else refs.validate_run_id(run)


# -- writing ---------------------------------------------------------------------------------------------------


def _bad(
    message: str, hint: str = "build the record with EvalRecord and data_fingerprint()"
) -> RegistryError:
    return RegistryError(message, hint=hint)


def validate(record: EvalRecord, files: dict[str, Path]) -> None:
    """RegistryError (exit 2) for a record or artifact file that must not reach the registry."""
    if record.eval_id:
        _validate_id(record.eval_id)
    if record.run is not None:
        refs.validate_run_id(record.run)
    data = record.data
    if not isinstance(data, dict):
        raise _bad(
            f"eval record: data must be a dict {{path, sha256, rows, format}}, got {type(data).__name__}"
        )
    if not data.get("path") or not isinstance(data.get("path"), str):
        raise _bad("eval record: data.path (the evaluated file) is missing")
    if not _SHA256.match(str(data.get("sha256"))):
        raise _bad(f"eval record: data.sha256 must be 64 hex digits, got {data.get('sha256')!r}")
    rows = data.get("rows")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise _bad(f"eval record: data.rows must be a count of rows, got {rows!r}")
    for name, value in (("metrics", record.metrics), ("base_metrics", record.base_metrics)):
        if not isinstance(value, dict):
            raise _bad(f"eval record: {name} must be a dict, got {type(value).__name__}")
    for name, path in files.items():
        if not _FILE_NAME.match(str(name)) or ".." in str(name):
            raise _bad(
                f"eval artifact name {name!r} is not a plain file name",
                hint="name artifacts like predictions.jsonl (letters, digits, '.', '_', '-')",
            )
        if not Path(path).is_file():
            raise _bad(f"eval artifact {name}: {path} is not a file", hint="write the file before committing")


def _validate_id(eval_id: str) -> str:
    if not isinstance(eval_id, str) or not refs.RUN_ID_RE.match(eval_id):
        raise RegistryError(
            f"invalid eval id {eval_id!r}",
            hint="eval ids look like 20250101-120000-a1b2c3; leave it empty and commit_eval makes one",
        )
    return eval_id


def render(record: EvalRecord, artifacts: list[dict], committed_at: str, env_values: list[str]) -> dict:
    """The file name -> bytes of `evals/<group>/<eval-id>/`, secrets scrubbed, each at most 1 MiB."""
    from ftkit import yamlio

    clean = lambda value: scrub.scrub_data(yamlio.normalize(value), env_values)  # noqa: E731
    data = dict(record.data)
    data.setdefault("name", Path(str(data["path"])).name)
    body = {
        "format": FORMAT_VERSION,
        "id": record.eval_id,
        "run": record.run,
        "model": record.model or (f"run {record.run}" if record.run else None),
        "base": record.base,
        "data": data,
        "settings": record.settings or {},
        "metrics": diffing.flatten(record.metrics or {}),
        "base_metrics": diffing.flatten(record.base_metrics or {}),
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "committed_at": committed_at,
        "env": record.env or {},
    }
    out = {}
    for name, value in (("eval.json", clean(body)), ("artifacts.json", artifacts)):
        text = records.dumps(value)
        blob = text.encode("utf-8")
        if len(blob) > records.MAX_FILE_BYTES:
            raise RegistryError(
                f"eval {record.eval_id}: {name} is {len(blob) / 1048576:.1f} MiB; registry files are limited to 1 MiB",
                hint="per-row results belong in an artifact file (stored in objects/), not in the record",
            )
        out[name] = blob
    return out


def commit_message(body: dict, env_values: list[str]) -> str:
    """A subject a `git log --oneline` reader understands, then trailers naming the record and its run.
    (Not `Ftkit-Run`: that trailer dates the run it names, damage.commit_times.)"""
    target = f"run {body['run']}" if body["run"] else str(body["model"])
    data = body["data"]
    subject = f"eval {body['id']} of {target} on {data.get('name')} ({data.get('rows')} rows)"
    first = next(iter(sorted(body["metrics"].items())), None)
    if first:
        value = first[1]
        subject += f", {first[0]}={f'{value:.4g}' if isinstance(value, float) else value}"
    trailers = f"Ftkit-Eval: {body['id']}\n" + (f"Ftkit-Eval-Of: {body['run']}\n" if body["run"] else "")
    return f"{scrub.scrub_text(subject, env_values)}\n\n{trailers}"


def commit(registry: RunRegistry, record: EvalRecord, files: dict[str, Path] | None = None) -> str:
    """Record `record` as one commit adding `evals/<group>/<eval-id>/`; returns the eval id (also set on the
    record). `files` (name -> path) are stored in objects/ (text scrubbed) and listed in artifacts.json. Nothing
    is written when the record is refused: a malformed id or field, or a run that is not in the registry."""
    files = dict(files or {})
    validate(record, files)
    if not record.eval_id:
        record.eval_id = new_eval_id(registry)
    group = group_of(record.run)
    _, root = registry.snapshot(fresh=True)
    _require_run(registry, root, record.run)
    env_values = scrub.env_secret_values()
    artifacts = []
    for name, path in sorted(files.items()):
        digest, size = registry.store.put_file(Path(path), env_values)
        artifacts.append(
            {"name": name, "sha256": digest, "size": size, "path": registry.store.relative_path(digest)}
        )
    blobs = render(record, artifacts, records.now_iso(), env_values)
    folder = gitops.write_tree(
        registry.repo,
        (gitops.Entry.blob(name, gitops.write_blob(registry.repo, data)) for name, data in blobs.items()),
    )

    def change(root: gitops.Entries) -> gitops.Entries:
        _require_run(registry, root, record.run)
        groups = gitops.subtree(registry.repo, root, FOLDER)
        held = gitops.read_tree(registry.repo, groups[group].sha) if group in groups else {}
        if record.eval_id in held:
            raise RegistryError(f"eval {record.eval_id} is already in the registry", hint="use a new eval id")
        held[record.eval_id] = gitops.Entry.tree(record.eval_id, folder)
        entry = gitops.Entry.tree(group, gitops.write_tree(registry.repo, held.values()))
        return gitops.with_child(registry.repo, root, FOLDER, group, entry)

    body = json.loads(blobs["eval.json"])
    registry.publish(change, commit_message(body, env_values), f"ftkit: record eval {record.eval_id}")
    return record.eval_id


def _require_run(registry: RunRegistry, root: gitops.Entries, run: str | None) -> None:
    if run is not None and run not in gitops.subtree(registry.repo, root, "runs"):
        raise RegistryError(
            f"cannot record an evaluation of run {run}: it is not in the registry at {registry.root}",
            hint="`ftkit runs --all` lists the runs; evaluate a model folder instead to record it without a run",
        )


def new_eval_id(registry: RunRegistry) -> str:
    """A fresh eval id (`YYYYMMDD-HHMMSS-xxxxxx`, time-ordered like run ids), unique among the records."""
    taken = set(_index(registry))
    while True:
        eval_id = refs.new_run_id()
        if eval_id not in taken:
            return eval_id


# -- reading ---------------------------------------------------------------------------------------------------


def _index(registry: RunRegistry) -> dict[str, tuple[str, str | None]]:
    """eval id -> (group, folder tree sha or None when the group cannot be read) for every record."""
    _, root = registry.snapshot()
    out: dict[str, tuple[str, str | None]] = {}
    for group, entry in gitops.subtree(registry.repo, root, FOLDER).items():
        try:
            held = gitops.read_tree(registry.repo, entry.sha)
        except RegistryError:
            continue
        for eval_id, folder in held.items():
            out[eval_id] = (group, folder.sha)
    return out


def _sort_key(record: dict) -> tuple[str, str]:
    """Recording order: commit time, else the time in the id (for a record whose eval.json cannot be read)."""
    eval_id = str(record.get("id") or "")
    when = record.get("committed_at")
    if not isinstance(when, str):
        when = (
            f"{eval_id[:4]}-{eval_id[4:6]}-{eval_id[6:8]}T{eval_id[9:11]}:{eval_id[11:13]}:{eval_id[13:15]}"
        )
    return when, eval_id


def records_of(registry: RunRegistry, run_id: str | None = None, models: bool = False) -> list[dict]:
    """Records newest first: of run `run_id`, of plain models (`models`), or all (neither). Each is eval.json's
    fields plus `artifacts`; one that cannot be read whole also has `damage` (never raises for damage)."""
    _, root = registry.snapshot()
    try:
        groups = gitops.subtree(registry.repo, root, FOLDER)
    except RegistryError:
        sha = root[FOLDER].sha
        problem = damage.item(FOLDER, damage.object_problem(registry.repo, sha), sha)
        return [{"id": None, "run": run_id, "damage": [problem]}]
    if run_id is not None:
        wanted = [refs.validate_run_id(run_id)]
    elif models:
        wanted = [MODELS]
    else:
        wanted = sorted(groups)
    found: list[dict] = []
    for group in wanted:
        if group in groups:
            found += _read_group(registry.repo, group, groups[group].sha)
    return sorted(found, key=_sort_key, reverse=True)


def _read_group(repo: git.Repo, group: str, sha: str) -> list[dict]:
    run = None if group == MODELS else group
    try:
        held = gitops.read_tree(repo, sha)
    except RegistryError:
        where = f"{FOLDER}/{group}"
        return [
            {"id": None, "run": run, "damage": [damage.item(where, damage.object_problem(repo, sha), sha)]}
        ]
    items = sorted(held.items())
    blobs = gitops.read_blobs(repo, [f"{entry.sha}:{name}" for _, entry in items for name in EVAL_FILES])
    out = []
    for index, (eval_id, entry) in enumerate(items):
        out.append(_parse(repo, group, eval_id, entry.sha, blobs[2 * index : 2 * index + 2]))
    return out


def _parse(repo: git.Repo, group: str, eval_id: str, sha: str, blobs: list[bytes | None]) -> dict:
    """One record from its two blobs; damage names the file (path in the registry tree) and what is wrong."""
    run = None if group == MODELS else group
    record: dict[str, Any] = {}
    artifacts: Any = []
    found = []
    for blob, name in zip(blobs, EVAL_FILES, strict=True):
        where = f"{FOLDER}/{group}/{eval_id}/{name}"
        if blob is None:
            problem = damage.file_damage(repo, sha, name)
            found.append({**problem, "file": where if problem["file"] == name else problem["file"]})
            continue
        try:
            value = json.loads(blob)
        except ValueError as error:
            found.append(damage.item(where, f"not valid JSON ({error})"))
            continue
        expected = dict if name == "eval.json" else list
        if not isinstance(value, expected):
            found.append(damage.item(where, f"not a JSON {'object' if expected is dict else 'list'}"))
        elif name == "eval.json":
            record = value
            if value.get("id") != eval_id or value.get("run") != run:
                found.append(damage.item(where, f"it names eval {value.get('id')} of run {value.get('run')} "
                                                f"but is stored as eval {eval_id} of {group}"))  # fmt: skip
        else:
            artifacts = value
    record = {**record, "id": eval_id, "run": run, "artifacts": artifacts}
    if found:
        record["damage"] = found
    return record


def load(registry: RunRegistry, ref: str) -> dict:
    """One record by eval id or unique id prefix, with its artifacts; RegistryError (exit 2) for an unknown or
    ambiguous reference and for a record that cannot be read whole."""
    ref = (ref or "").strip()
    index = _index(registry)
    if ref in index:
        matches = [ref]
    else:
        matches = sorted((eval_id for eval_id in index if ref and eval_id.startswith(ref)), reverse=True)
    if not matches:
        raise RegistryError(
            f"no eval record matches {ref!r}",
            hint="`ftkit show RUN` lists a run's evaluations with their ids",
        )
    if len(matches) > 1:
        raise RegistryError(
            f"eval reference {ref!r} is ambiguous: it matches {len(matches)} records",
            hint="give more characters of the eval id",
            problems=[f"eval {eval_id} ({index[eval_id][0]})" for eval_id in matches[:10]],
        )
    group, sha = index[matches[0]]
    blobs = gitops.read_blobs(registry.repo, [f"{sha}:{name}" for name in EVAL_FILES])
    record = _parse(registry.repo, group, matches[0], sha, blobs)
    if "damage" in record:
        raise RegistryError(
            f"eval {matches[0]} is damaged: {', '.join(d['file'] for d in record['damage'])} cannot be read",
            hint=damage.repair_hint(registry.root),
            problems=[f"{d['file']}: {d['problem']}" for d in record["damage"]],
        )
    return record


# -- sharing ---------------------------------------------------------------------------------------------------


def merge(
    repo: git.Repo, ours: gitops.Entries, theirs: gitops.Entries, folder: str = FOLDER
) -> gitops.Entry | None:
    """The `evals/` (or `folder`: `exports/`) entry of two merged histories: the union of both sides' records
    (records only ever add their own folder, so an id on both sides is the same record); None when neither side
    has any."""
    our_groups, their_groups = gitops.subtree(repo, ours, folder), gitops.subtree(repo, theirs, folder)
    if not our_groups and not their_groups:
        return None
    merged = dict(their_groups)
    for group, entry in our_groups.items():
        other = their_groups.get(group)
        if other is None or other.sha == entry.sha:
            merged[group] = entry
            continue
        held = {**gitops.read_tree(repo, other.sha), **gitops.read_tree(repo, entry.sha)}
        merged[group] = gitops.Entry.tree(group, gitops.write_tree(repo, held.values()))
    return gitops.Entry.tree(folder, gitops.write_tree(repo, merged.values()))


def when(record: dict) -> str | None:
    """The record's commit time as `YYYY-MM-DD HH:MM` UTC, for listings."""
    try:
        moment = datetime.fromisoformat(str(record.get("committed_at")))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
