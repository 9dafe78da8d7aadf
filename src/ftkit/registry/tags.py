"""Tags: movable names for runs, stored as files `tags/<name>` on branch `main`.

A tag file holds {"run": id or null (untagged), "at": time, "by": who}. Tags are files rather than git refs so
that moving one is an ordinary commit that push and pull merge: when two machines moved the same tag, the later
move wins everywhere.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import git

from ftkit.errors import RegistryError
from ftkit.registry import gitops, records, refs

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

FOLDER = "tags"


def read(repo: git.Repo, root: gitops.Entries) -> dict[str, str]:
    """Tag name -> run id for the tree `root`; untagged and unreadable tag files are left out."""
    out = {}
    for name, entry in gitops.subtree(repo, root, FOLDER).items():
        try:
            target = json.loads(gitops.read_object(repo, entry.sha, b"blob")).get("run")
        except (ValueError, AttributeError):
            continue
        if target:
            out[name] = target
    return out


def move(registry: RunRegistry, ref: str, name: str) -> dict:
    """Point tag `name` at the run `ref` names (moving it if it exists); returns {tag, run, previous}, where
    `previous` is the target this move replaced (read from the tree the commit replaces, not a stale snapshot)."""
    refs.validate_tag(name)
    run_id = registry.resolve(ref)
    if registry.tags().get(name) == run_id:  # already there: nothing to write
        return {"tag": name, "run": run_id, "previous": run_id}
    previous = _write(registry, name, run_id, f"ftkit: tag {name}")
    return {"tag": name, "run": run_id, "previous": previous}


def remove(registry: RunRegistry, name: str) -> dict:
    """Remove tag `name`; returns {tag, run}. Unknown tags raise RegistryError listing the tags."""
    if name not in registry.tags():
        raise _no_tag(name, registry.tags())
    previous = _write(registry, name, None, f"ftkit: untag {name}")
    return {"tag": name, "run": previous}


def _no_tag(name: str, current: dict[str, str]) -> RegistryError:
    return RegistryError(
        f"no tag named {name!r}",
        hint="tags: " + (", ".join(sorted(current)) if current else "none yet (ftkit tag RUN NAME)"),
    )


def _write(registry: RunRegistry, name: str, run_id: str | None, reason: str) -> str | None:
    """Point `name` at `run_id` (None: untag) with one commit, unless it already points there; return the
    target it had. The target and the commit message's "(was X)" are read inside the compare-and-swap's change,
    from the very tree the commit replaces, so racing moves each name the target they really replaced."""
    # An untag is a file saying "run": null, not a deletion, so that a merge cannot resurrect the old target.
    payload = {
        "run": run_id,
        "at": records.now_iso(),
        "by": f"{registry.actor.name} <{registry.actor.email}>",
    }
    entry = gitops.Entry.blob(name, gitops.write_blob(registry.repo, records.dumps(payload).encode()))
    replaced: list[str | None] = [None]

    def change(root: gitops.Entries) -> gitops.Entries:
        current = read(registry.repo, root)
        replaced[0] = current.get(name)
        if run_id is None and replaced[0] is None:  # removed by another command meanwhile
            raise _no_tag(name, current)
        if replaced[0] == run_id:
            return root  # already there: nothing to commit
        return gitops.with_child(registry.repo, root, FOLDER, name, entry)

    def message() -> str:
        was = f" (was {replaced[0]})" if replaced[0] else ""
        return f"tag {name} -> {run_id}{was}" if run_id else f"untag {name}{was}"

    registry.publish(change, message, reason)
    return replaced[0]


def merge(repo: git.Repo, ours: gitops.Entries, theirs: gitops.Entries) -> gitops.Entries:
    """Tag entries of two histories merged: where both have a tag and they differ, the later move wins."""
    merged = dict(ours)
    for name, entry in theirs.items():
        mine = ours.get(name)
        if mine is None or (mine.sha != entry.sha and _moved_at(repo, entry) > _moved_at(repo, mine)):
            merged[name] = entry
    return merged


def _moved_at(repo: git.Repo, entry: gitops.Entry) -> tuple[str, str]:
    try:
        return str(json.loads(gitops.read_object(repo, entry.sha, b"blob")).get("at") or ""), entry.sha
    except (ValueError, AttributeError):
        return "", entry.sha
