"""Runs that trained but could not be committed, kept until the registry can take them.

When `ftkit run` trains and the commit then fails (a lock appeared, the disk became full or read-only, git
refused), the run must not be lost. `keep` writes its complete record — every RunRecord field and the rows of the
artifacts already in the weights store — as one JSON file, secrets scrubbed (scrub.py) and written atomically, to
the first of these folders that can be written:

    <registry>/.git/ftkit-pending/<run-id>.json              inside the registry, travels with it
    $XDG_STATE_HOME/ftkit/pending/<key>/<run-id>.json        ~/.local/state when XDG_STATE_HOME is unset
    <tmp>/ftkit-pending-<uid>/<key>/<run-id>.json            last resort (a read-only home)

`<key>` names the registry by a hash of its real path; the file says which registry it belongs to. Every ftkit
command that opens the registry calls `commit_pending` first: each pending run is committed once (it replaces the
run's `running` folder, lifecycle.py; a run already finished in the registry is not recorded again) and its file
removed; one that still cannot be committed stays pending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import git

from ftkit.errors import RegistryError
from ftkit.registry import gitops, records, scrub

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

FOLDER = "ftkit-pending"
KIND = "ftkit-pending-run"
FORMAT = 1

__all__ = ["Outcome", "commit_pending", "find", "keep", "locations"]


@dataclass
class Outcome:
    """What `commit_pending` did: the runs it recorded, and problems with ones that stay pending."""

    recorded: list[str] = field(default_factory=list)  # one line per run recorded now
    problems: list[str] = field(default_factory=list)  # one line per pending file still not recorded


def locations(root: Path) -> list[Path]:
    """The folders that may hold pending runs of the registry at `root`, in the order `keep` tries them."""
    real = os.path.realpath(root)
    key = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return [
        Path(real) / ".git" / FOLDER,
        Path(state) / "ftkit" / "pending" / key,
        Path(tempfile.gettempdir()) / f"ftkit-pending-{user}" / key,
    ]


def keep(root: Path, record: records.RunRecord, artifacts: list[dict] | None, reason: str) -> Path:
    """Write the complete record of a run that could not be committed to the registry at `root`; return the file.

    `artifacts` are the rows of files already in the weights store, or None to store the run's output folder
    when it is committed. Raises RegistryError naming every folder tried when none can be written."""
    env_values = scrub.env_secret_values()
    document = {
        "kind": KIND,
        "format": FORMAT,
        "registry": os.path.realpath(root),
        "saved_at": records.now_iso(),
        "reason": scrub.scrub_text(reason, env_values),
        "artifacts": artifacts,
        "record": _scrubbed(record, env_values),
    }
    text = json.dumps(records.json_safe(document), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    failures = []
    for folder in locations(root):
        try:
            return _write_atomically(folder, f"{record.run_id}.json", text + "\n")
        except OSError as error:
            failures.append(f"{folder}: {error.strerror or error}")
    raise RegistryError(
        f"run {record.run_id} could not be recorded, and no folder could keep its record for later",
        hint="free space or make one of these folders writable, then re-run",
        problems=failures,
    )


def find(root: Path) -> list[Path]:
    """Pending run files of the registry at `root`, oldest run first."""
    found = []
    for folder in locations(root):
        try:
            found += [path for path in folder.iterdir() if path.suffix == ".json" and path.is_file()]
        except OSError:
            continue
    return sorted(found, key=lambda path: (path.stem, str(path)))


def commit_pending(registry: RunRegistry) -> Outcome:
    """Commit every pending run of `registry` (oldest first) and remove its file; one that fails stays pending."""
    outcome = Outcome()
    for path in find(registry.root):
        try:
            document = _read(path, registry.root)
        except RegistryError as error:
            outcome.problems.append(f"{error.message}; it stays there ({error.hint})")
            continue
        if document is None:  # another registry's file (the folder key collided) or not ours
            continue
        record = records.RunRecord(**document["record"])
        if _recorded(registry, record.run_id):  # recorded meanwhile (another command committed it)
            _remove(path)
            continue
        try:
            registry.commit_run(record, artifacts=_stored(registry, document.get("artifacts")))
        except (RegistryError, OSError, git.GitError) as error:
            if _recorded(registry, record.run_id):
                _remove(path)
                continue
            why = error.message if isinstance(error, RegistryError) else str(error)
            outcome.problems.append(
                f"pending run {record.run_id} ({path}) is still not recorded: {why}; it stays pending"
            )
            continue
        _remove(path)
        outcome.recorded.append(f"recorded pending run {record.run_id} ({record.name}) from {path}")
    return outcome


def _scrubbed(record: records.RunRecord, env_values: list[str]) -> dict[str, Any]:
    """The record's fields with secrets redacted the way the registry's files redact them."""
    from ftkit import yamlio  # PyYAML only for writing and loading runs, never for listing them

    fields = dataclasses.asdict(record)
    recipe_text, overrides = fields.pop("recipe_text"), fields.pop("overrides")
    clean = scrub.scrub_data(yamlio.normalize(fields), env_values)
    clean["recipe_text"] = scrub.scrub_yaml_text(recipe_text or "", env_values)
    clean["overrides"] = [records._scrub_override(item, env_values) for item in overrides or []]
    return clean


def _write_atomically(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as writer:
            writer.write(text)
            writer.flush()
            os.fsync(writer.fileno())
        target = folder / name
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return target


def _read(path: Path, root: Path) -> dict | None:
    """The pending document at `path`, or None when it belongs to another registry; RegistryError if unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("kind") != KIND or not isinstance(document.get("record"), dict):
            raise ValueError("not an ftkit pending run")
        if int(document.get("format", 0)) > FORMAT:
            raise ValueError(f"written by a newer ftkit (format {document['format']})")
        fields = {f.name for f in dataclasses.fields(records.RunRecord)}
        unknown = sorted(set(document["record"]) - fields)
        if unknown:
            raise ValueError(f"unknown record fields {', '.join(unknown)}")
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise RegistryError(
            f"pending run file {path} cannot be read ({error})",
            hint="fix or remove that file",
        ) from error
    if document.get("registry") != os.path.realpath(root):
        return None
    return document


def _recorded(registry: RunRegistry, run_id: str) -> bool:
    """Whether `run_id` is in the registry now with its final record (read fresh: another process may have
    recorded it); a `running` or `lost` folder is the one the pending record finishes."""
    _, root = registry.snapshot(fresh=True)
    entry = gitops.subtree(registry.repo, root, "runs").get(run_id)
    if entry is None:
        return False
    try:
        files = gitops.read_tree(registry.repo, entry.sha)
        run = json.loads(gitops.read_object(registry.repo, files["run.json"].sha, b"blob"))
    except (KeyError, ValueError, RegistryError):
        return True  # a damaged folder: never replaced by a commit (verify and repair deal with it)
    return not isinstance(run, dict) or run.get("status") in records.FINAL_STATUSES


def _stored(registry: RunRegistry, artifacts: list[dict] | None) -> list[dict] | None:
    """The pending artifact rows when every file is still in the weights store; else None (store them again)."""
    if artifacts is None:
        return None
    if all(registry.store.path_for(str(row.get("sha256", ""))).is_file() for row in artifacts):
        return artifacts
    return None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # another command removed it first
        path.unlink()
