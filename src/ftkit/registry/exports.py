"""Export records: what `ftkit export` wrote, where, and the sha256 of every file, kept in the registry.

One record is one commit that only adds `exports/<run-id>/<export-id>/export.json`, published with the same
compare-and-swap as a run and an eval record (evals.py), so it never rewrites a run folder and `ftkit runs` (keyed
by the `runs/` tree) never reads it. Pull merges `exports/` as a union, like `evals/` (sync.py).

export.json: {format, id, run, mode (merge|adapter), dtype, method, path (absolute export folder), files
[{name, sha256, size}], created_at, ftkit_version}, scrubbed of secrets before it is written.

    export_id = record_export(registry, run_id, mode="merge", dtype="fp32", method="lora", path=folder,
                              files={"model.safetensors": "<sha256>", ...})
    exports(registry, run_id)   # that run's records, newest first; one that cannot be read carries `damage`
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftkit.errors import RegistryError
from ftkit.registry import damage, gitops, records, refs, scrub

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

FOLDER = "exports"
FORMAT_VERSION = 1
MODES = ("merge", "adapter")


def record_export(
    registry: RunRegistry,
    run_id: str,
    *,
    mode: str,
    dtype: str,
    path: str | Path,
    files: dict[str, str],
    method: str | None = None,
) -> str:
    """Record an export of run `run_id` as one commit adding `exports/<run-id>/<export-id>/`; returns the export
    id. `files`: relative name -> sha256 of the files written under `path` (their sizes are read from disk).
    RegistryError (exit 2), with nothing written, for an unknown run or a malformed field."""
    from ftkit import __version__

    refs.validate_run_id(run_id)
    if mode not in MODES:
        raise RegistryError(f"export record: mode must be one of {', '.join(MODES)}, got {mode!r}")
    folder = Path(path).expanduser().absolute()
    rows = []
    for name, digest in sorted(files.items()):
        file = folder / name
        if not file.is_file():
            raise RegistryError(
                f"export record: {file} is not a file", hint="record the export after writing it"
            )
        rows.append({"name": name, "sha256": digest, "size": file.stat().st_size})
    export_id = refs.new_run_id()
    body = {
        "format": FORMAT_VERSION,
        "id": export_id,
        "run": run_id,
        "mode": mode,
        "dtype": dtype,
        "method": method,
        "path": str(folder),
        "files": rows,
        "created_at": records.now_iso(),
        "ftkit_version": __version__,
    }
    env_values = scrub.env_secret_values()
    blob = records.dumps(scrub.scrub_data(body, env_values)).encode("utf-8")
    tree = gitops.write_tree(
        registry.repo, [gitops.Entry.blob("export.json", gitops.write_blob(registry.repo, blob))]
    )

    def change(root: gitops.Entries) -> gitops.Entries:
        if run_id not in gitops.subtree(registry.repo, root, "runs"):
            raise RegistryError(
                f"cannot record an export of run {run_id}: it is not in the registry at {registry.root}",
                hint="`ftkit runs --all` lists the runs",
            )
        groups = gitops.subtree(registry.repo, root, FOLDER)
        held = gitops.read_tree(registry.repo, groups[run_id].sha) if run_id in groups else {}
        held[export_id] = gitops.Entry.tree(export_id, tree)
        entry = gitops.Entry.tree(run_id, gitops.write_tree(registry.repo, held.values()))
        return gitops.with_child(registry.repo, root, FOLDER, run_id, entry)

    subject = f"export {export_id} of run {run_id} ({mode}, {dtype}, {len(rows)} files)"
    message = (
        f"{scrub.scrub_text(subject, env_values)}\n\nFtkit-Export: {export_id}\nFtkit-Export-Of: {run_id}\n"
    )
    registry.publish(change, message, f"ftkit: record export {export_id}")
    return export_id


def exports(registry: RunRegistry, run_id: str | None = None) -> list[dict]:
    """Run `run_id`'s export records (every run's when None), newest first. One that cannot be read whole is
    {id, run, damage} (a list of {file, object, problem}; id None when a whole group is unreadable); never raises
    for damage."""
    _, root = registry.snapshot()
    repo = registry.repo
    try:
        groups = gitops.subtree(repo, root, FOLDER)
    except RegistryError:
        problem = damage.item(FOLDER, damage.object_problem(repo, root[FOLDER].sha), root[FOLDER].sha)
        return [{"id": None, "run": run_id, "damage": [problem]}]
    wanted = sorted(groups) if run_id is None else [refs.validate_run_id(run_id)]
    found: list[dict] = []
    for group in wanted:
        if group in groups:
            found += _read_group(repo, group, groups[group].sha)
    return sorted(found, key=lambda r: (str(r.get("created_at") or ""), str(r["id"])), reverse=True)


def _read_group(repo: Any, run_id: str, sha: str) -> list[dict]:
    try:
        held = sorted(gitops.read_tree(repo, sha).items())
    except RegistryError:
        problem = damage.item(f"{FOLDER}/{run_id}", damage.object_problem(repo, sha), sha)
        return [{"id": None, "run": run_id, "damage": [problem]}]
    blobs = gitops.read_blobs(repo, [f"{folder.sha}:export.json" for _, folder in held])
    return [
        _parse(repo, run_id, export_id, folder.sha, blob)
        for (export_id, folder), blob in zip(held, blobs, strict=True)
    ]


def _parse(repo: Any, run_id: str, export_id: str, sha: str, blob: bytes | None) -> dict:
    where = f"{FOLDER}/{run_id}/{export_id}/export.json"
    if blob is None:
        problem = damage.file_damage(repo, sha, "export.json")
        return {"id": export_id, "run": run_id, "damage": [{**problem, "file": where}]}
    try:
        value = json.loads(blob)
    except ValueError as error:
        return {"id": export_id, "run": run_id, "damage": [damage.item(where, f"not valid JSON ({error})")]}
    if not isinstance(value, dict) or not isinstance(value.get("files"), list):
        return {"id": export_id, "run": run_id, "damage": [damage.item(where, "not an export record")]}
    return {**value, "id": export_id, "run": run_id}
