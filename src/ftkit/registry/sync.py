"""Sharing a registry through a git remote: remotes, pull (fetch and merge) and push.

Histories merge without conflicts by construction: a commit only touches its own run's `runs/<run-id>/` folder, so
the merged `runs/` is the union of both sides; a run changed on both sides (started here, finished there) keeps
its furthest state: finished over lost over running, then the later commit (lifecycle.merge_runs). Evaluation
records under `evals/` and export records under `exports/` merge likewise (evals.merge), and a tag moved on both
sides goes to the later move (tags.py). A merge is published with the same compare-and-swap as a run, so it is safe while runs are being recorded.
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ftkit.errors import RegistryError, UsageError
from ftkit.registry import evals, gitops, lifecycle, scrub, tags

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

_ATTEMPTS = 200


def _target(remote: str) -> str:
    """A remote name or URL as git takes it; an existing local folder becomes its absolute path."""
    if not remote:
        raise UsageError("empty remote name")
    path = Path(remote).expanduser()
    if "://" not in remote and not re.match(r"^[\w.-]+@[\w.-]+:", remote) and path.exists():
        return str(path.absolute())
    return remote


def _registry_flag(registry: RunRegistry) -> str:
    """` --registry ROOT` for commands printed in hints, unless ROOT is the default registry."""
    from ftkit.registry.store import default_registry_path

    if Path(registry.root).absolute() == default_registry_path().absolute():
        return ""
    return f" --registry {registry.root}"


def _require_remote(registry: RunRegistry, remote: str) -> None:
    """RegistryError (exit 2) when `remote` is a plain name no remote is configured under: git's own message
    for it ("does not appear to be a git repository") reads as if the remote were broken."""
    if (
        "://" in remote
        or re.match(r"^[\w.-]+@[\w.-]+:", remote)
        or any(sep in remote for sep in ("/", "\\"))
        or remote.startswith((".", "~"))
        or Path(remote).exists()
    ):
        return  # a URL or a path: git says what is wrong with it
    configured = sorted(r.name for r in registry.repo.remotes)
    if remote in configured:
        return
    raise RegistryError(
        f"no remote named {remote!r}; set one with `ftkit registry remote {remote} URL{_registry_flag(registry)}`",
        hint=f"configured remotes: {', '.join(configured)}"
        if configured
        else "or give the remote's URL or path instead of a name",
    )


def _failed(registry: RunRegistry, action: str, remote: str, output: str) -> RegistryError:
    """git's failure as an error: its first fatal line in the message, every line it printed in `problems`
    (URL passwords and other secrets masked)."""
    env_values = scrub.env_secret_values()
    lines = [scrub.scrub_text(line.strip(), env_values) for line in output.splitlines() if line.strip()]
    said = (
        [line for line in lines if line.startswith(("fatal:", "error:", "!"))] or lines[-1:] or ["git failed"]
    )
    name = remote if remote in {r.name for r in registry.repo.remotes} else "origin"
    return RegistryError(
        scrub.scrub_text(f"cannot {action} {remote!r}: {said[0]}", env_values),
        hint=f"check the remote and the network; change the remote with "
        f"`ftkit registry remote {name} URL{_registry_flag(registry)}`",
        problems=lines if len(lines) > 1 else [],
    )


def set_remote(registry: RunRegistry, name: str, url: str) -> None:
    """Add or change the named remote `name`."""
    url = _target(url)
    try:
        if name in {remote.name for remote in registry.repo.remotes}:
            registry.repo.remote(name).set_url(url)
        else:
            registry.repo.create_remote(name, url)
    except Exception as error:  # GitCommandError, or a name git refuses
        raise UsageError(
            scrub.mask_url(f"cannot set remote {name!r} to {url}: {error}"),
            hint="use a plain name such as origin",
        ) from error


def remotes(registry: RunRegistry) -> dict[str, str]:
    """Configured remotes: name -> url, URL passwords masked (git keeps them; output never shows them)."""
    return {remote.name: scrub.mask_url(remote.url) for remote in registry.repo.remotes}


def pull(registry: RunRegistry, remote: str = "origin") -> dict:
    """Fetch the remote registry and merge its runs and tags into this one."""
    _require_remote(registry, remote)
    repo = registry.repo
    incoming = f"refs/ftkit/incoming/{os.getpid()}-{random.randrange(1 << 30)}"
    try:
        status, _, stderr = repo.git.fetch(
            "--quiet", "--no-tags", _target(remote), f"+{registry.BRANCH_REF}:{incoming}",
            with_extended_output=True, with_exceptions=False,
        )  # fmt: skip
        if status != 0:
            if "couldn't find remote ref" in stderr:
                return {"remote": remote, "result": "remote-empty", "new_runs": [], "tags": []}
            raise _failed(registry, "pull from", remote, stderr)
        theirs = gitops.tip(repo, incoming)
        if theirs is None:
            raise _failed(registry, "pull from", remote, "git fetch wrote no commit")
        their_root = gitops.read_tree(repo, gitops.commit_tree(repo, theirs))
        registry.check_format(their_root, f"remote {remote!r}")
        result = _merge(registry, theirs, their_root, f"Merge runs from {remote}")
    finally:
        repo.git.update_ref("-d", incoming, with_exceptions=False)
    result["remote"] = remote
    return result


def _merge(registry: RunRegistry, theirs: str, their_root: gitops.Entries, message: str) -> dict:
    repo = registry.repo
    their_runs = gitops.subtree(repo, their_root, "runs")
    for attempt in range(_ATTEMPTS):
        ours, our_root = registry.snapshot(fresh=True)
        if ours == theirs or repo.is_ancestor(theirs, ours):
            return {"result": "up-to-date", "new_runs": [], "tags": []}
        our_runs = gitops.subtree(repo, our_root, "runs")
        new_runs = sorted(set(their_runs) - set(our_runs))
        our_tags, their_tags = (
            gitops.subtree(repo, our_root, "tags"),
            gitops.subtree(repo, their_root, "tags"),
        )
        merged_tags = tags.merge(repo, our_tags, their_tags)
        changed_tags = sorted(name for name, entry in merged_tags.items() if our_tags.get(name) != entry)
        updated: list[str] = []
        if repo.is_ancestor(ours, theirs):
            new_commit, entries, kind = theirs, their_root, "fast-forward"
        else:
            entries = {**their_root, **our_root}
            if their_runs or our_runs:
                runs, updated = lifecycle.merge_runs(repo, our_runs, their_runs)
                entries["runs"] = gitops.Entry.tree("runs", gitops.write_tree(repo, runs.values()))
            merged_evals = evals.merge(repo, our_root, their_root)  # records, like runs, only add folders
            if merged_evals is not None:
                entries[evals.FOLDER] = merged_evals
            merged_exports = evals.merge(repo, our_root, their_root, "exports")  # export records (exports.py)
            if merged_exports is not None:
                entries["exports"] = merged_exports
            if merged_tags:
                entries["tags"] = gitops.Entry.tree("tags", gitops.write_tree(repo, merged_tags.values()))
            tree = gitops.write_tree(repo, entries.values())
            summary = f"{message}: {len(new_runs)} new run(s)"
            new_commit = gitops.write_commit(repo, tree, [ours, theirs], summary, registry.actor)
            kind = "merged"
        if registry.move_tip(new_commit, ours, entries, f"ftkit: {message}"):
            return {"result": kind, "new_runs": new_runs, "updated_runs": updated, "tags": changed_tags}
        time.sleep(random.uniform(0.001, 0.005) * min(attempt + 1, 20))
    raise RegistryError(f"could not merge into {registry.root}: the registry stayed busy", hint="retry")


def push(registry: RunRegistry, remote: str = "origin") -> dict:
    """Publish the registry to a git remote; when the remote moved on, pull (merge) first and push again."""
    _require_remote(registry, remote)
    target = _target(remote)
    pulled: list[str] = []
    for _ in range(5):
        status, stdout, stderr = registry.repo.git.push(
            "--porcelain", "--quiet", target, f"{registry.BRANCH_REF}:{registry.BRANCH_REF}",
            with_extended_output=True, with_exceptions=False,
        )  # fmt: skip
        if status == 0:
            return {"remote": remote, "result": "pushed", "head": registry.head, "merged_runs": pulled}
        output = f"{stderr}\n{stdout}"
        if "rejected" in output or "non-fast-forward" in output or "fetch first" in output:
            pulled += pull(registry, remote)["new_runs"]
            continue
        raise _failed(registry, "push to", remote, output)
    raise RegistryError(f"push to {remote!r} kept being rejected", hint="someone is pushing right now; retry")
