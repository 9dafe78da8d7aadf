"""Damage found while reading a registry, described for people: which run, which file, what is wrong, what to do.

Reads never skip what they cannot read. A run whose `run.json` or `metrics.json` is missing or unreadable is
listed as damaged (store.py, summaries.py); loading it, or answering a reference that depends on it, raises
RegistryError (exit 2) naming the run, the file, the git object and the repair commands. A damaged run's place in
time comes from the commit that recorded it (`commit_times`), so `@latest` keeps meaning the newest run.

A damage item is {"file": name in the run folder, "object": git sha or None, "problem": what is wrong}.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import git

from ftkit.errors import RegistryError
from ftkit.registry import gitops
from ftkit.registry.records import RunDamaged

FOLDER = "run folder"


def repair_hint(root: Path) -> str:
    """What to do about damaged objects in the registry at `root`."""
    return (
        f"`ftkit registry verify --registry {root}` lists every damaged run and file; restore lost objects with "
        f"`ftkit registry repair --from REMOTE --registry {root}` from a registry that holds these runs (one you "
        f"pushed to or pulled from), or inspect with `git --git-dir {Path(root) / '.git'} fsck --full`"
    )


def object_problem(repo: git.Repo, sha: str) -> str:
    """Why git object `sha` cannot be read, naming where it should be (a loose file or the packs)."""
    status, _, stderr = repo.git.cat_file("-t", sha, with_extended_output=True, with_exceptions=False)
    said = [
        line.removeprefix("error: ").strip()
        for line in stderr.splitlines()
        if line.startswith("error: ") and "could not get object info" not in line
    ]
    loose = Path(repo.git_dir) / "objects" / sha[:2] / sha[2:]
    if status == 0 and not said:
        return f"object {sha[:12]} cannot be read as expected (wrong type or damaged content)"
    if loose.is_file():
        return f"object {sha[:12]} is damaged: {loose} is unreadable" + (f" ({said[0]})" if said else "")
    if said:
        return f"object {sha[:12]} cannot be read: {'; '.join(dict.fromkeys(said))}"
    return f"object {sha[:12]} is missing from {Path(repo.git_dir) / 'objects'}"


def item(file: str, problem: str, sha: str | None = None) -> dict:
    """One damage item."""
    return {"file": file, "object": sha, "problem": problem}


def file_damage(repo: git.Repo, tree_sha: str, name: str) -> dict:
    """The damage item for file `name` of the run folder `tree_sha`, which could not be read."""
    try:
        files = gitops.read_tree(repo, tree_sha)
    except RegistryError:
        return item(FOLDER, object_problem(repo, tree_sha), tree_sha)
    entry = files.get(name)
    if entry is None:
        return item(name, "the file is not in the run folder")
    return item(name, object_problem(repo, entry.sha), entry.sha)


def lines(run_id: str, damage: list[dict]) -> list[str]:
    """One human line per damage item."""
    return [f"run {run_id}: {d['file']}: {d['problem']}" for d in damage]


def run_error(root: Path, run_id: str, damage: list[dict]) -> RunDamaged:
    """RegistryError (exit 2) for a run that cannot be read whole, naming each file and what to do."""
    return RunDamaged(run_id, damage, hint=repair_hint(root))


def commit_times(repo: git.Repo, tip: str) -> dict[str, str]:
    """Run id -> commit time (UTC, ISO, whole seconds) of the commit that recorded it, from the `Ftkit-Run`
    trailers of `tip`'s history; what a damaged history still yields when git stops early."""
    _, out, _ = repo.git.log(
        "--format=%ct %(trailers:key=Ftkit-Run,valueonly,separator=%x20)",
        tip,
        with_extended_output=True,
        with_exceptions=False,
    )
    times: dict[str, str] = {}
    for line in out.splitlines():
        stamp, _, run_ids = line.partition(" ")
        if not stamp.isdigit():
            continue
        when = datetime.fromtimestamp(int(stamp), timezone.utc).isoformat(timespec="microseconds")
        for run_id in run_ids.split():
            times.setdefault(run_id, when)
    return times
