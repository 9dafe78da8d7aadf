"""Opening a registry folder, and creating it when it is new: the checks `RunRegistry.open` runs before any read.

A new registry is made in a scratch folder beside `.git` and renamed into place, so processes racing to create
one registry never see a half-made repository; each then publishes the same first commit with compare-and-swap.
An existing folder must be a usable git directory whose `main` holds an ftkit `registry.json`.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import git

from ftkit.errors import RegistryError
from ftkit.registry import gitops, records, recover

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

_MAX_ATTEMPTS = 200
# Short-lived entries a registry folder may hold before its .git exists (creation, preflight write check).
SCRATCH = (".git-init-", ".ftkit-write-check-")
# The folder `ftkit ui` keeps its state in while the registry it serves does not exist yet (ui/settings.py).
UI_FOLDER = "ftkit-ui"
_README = """# ftkit run registry

Every commit on `main` starts, updates or finishes one run under `runs/<run-id>/` (or moves a tag under `tags/`).
Browse it with `ftkit runs`, `ftkit show RUN`, `ftkit log` and `ftkit diff A B`.
Weights live outside git, in the content-addressed store `objects/sha256/` beside this repository.
"""


def open_registry(cls: type[RunRegistry], root: Path, create: bool, check: bool = True) -> RunRegistry:
    """Open the registry at the absolute folder `root` (creating it when `create` and it does not exist); with
    `check`, refuse one whose `main` cannot be read or is not an ftkit registry."""
    if root.exists() and not root.is_dir():
        raise RegistryError(f"registry path {root} is a file, not a folder", hint="pass --registry DIR")
    git_dir = root / ".git"
    if not git_dir.exists():
        if root.exists() and any(
            not entry.name.startswith(SCRATCH) and entry.name != UI_FOLDER for entry in root.iterdir()
        ):
            raise RegistryError(
                f"{root} is not an ftkit registry: the folder exists, is not empty and has no .git",
                hint="point --registry (or FTKIT_REGISTRY) at an ftkit registry or at a new folder",
            )
        if not create:
            raise RegistryError(
                f"no registry at {root}",
                hint="runs are recorded there by `ftkit run`; pass --registry DIR to use another one",
            )
        root.mkdir(parents=True, exist_ok=True)
        registry = cls(root, _create_git_dir(cls, root, git_dir))
        ensure_first_commit(registry)
        return registry
    head = recover.head_problem(git_dir) if git_dir.is_dir() else None
    if head is not None:
        raise recover.broken_head_error(root, head)
    if not git_dir.is_dir() or not (git_dir / "HEAD").is_file() or not (git_dir / "objects").is_dir():
        raise RegistryError(
            f"{root} is not an ftkit registry: {git_dir} is not a usable git directory (corrupt or foreign)",
            hint="point --registry at another folder, or move this one away and let ftkit create a new one",
        )
    registry = cls(root, gitops.open_repo(git_dir))
    if check:
        _check(registry, create)
    return registry


def _create_git_dir(cls: type[RunRegistry], root: Path, git_dir: Path) -> git.Repo:
    """Create and configure the git directory beside `git_dir`, then rename it into place: processes racing to
    create one registry never see a half-made `.git` (or fight over its config lock); losers open the winner's."""
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH[0], dir=root))
    try:
        repo = gitops.init_repo(scratch / "git")
        _configure(repo)
        repo.close()
        try:
            os.rename(scratch / "git", git_dir)
        except OSError:
            if not (git_dir / "HEAD").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return gitops.open_repo(git_dir)


def _configure(repo: git.Repo) -> None:
    with repo.config_writer() as config:
        config.set_value("core", "logAllRefUpdates", "true")
        config.set_value("gc", "autoDetach", "false")
    exclude = Path(repo.git_dir) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with open(exclude, "a", encoding="utf-8") as handle:
        handle.write("/objects/\n")


def ensure_first_commit(registry: RunRegistry) -> None:
    """Publish the registry's first commit (registry.json and README.md) unless `main` exists."""
    repo = registry.repo
    if gitops.tip(repo, registry.BRANCH_REF):
        return
    blob = lambda text: gitops.write_blob(repo, text.encode("utf-8"))  # noqa: E731
    entries = [
        gitops.Entry.blob("registry.json", blob(records.dumps({"format": records.FORMAT_VERSION}))),
        gitops.Entry.blob("README.md", blob(_README)),
    ]
    tree = gitops.write_tree(repo, entries)
    commit = gitops.write_commit(repo, tree, [], "Create ftkit run registry", registry.actor)
    # Losing this race is fine: another process created the same first commit. Its update may still hold the
    # ref's lock (our swap fails, yet `main` is not there yet): retry until one of us has written it.
    for _ in range(_MAX_ATTEMPTS):
        if gitops.compare_and_swap(repo, registry.BRANCH_REF, commit, None, "ftkit: create registry"):
            return
        if gitops.tip(repo, registry.BRANCH_REF):
            return
        time.sleep(0.01 + random.random() * 0.02)


def _check(registry: RunRegistry, create: bool) -> None:
    """Refuse a registry whose `main` is lost or broken while history exists (recover.py), or that is not an ftkit
    registry; create the first commit of a new one. Never starts a new history over an existing one."""
    if recover.main_problem(registry) is None:
        registry.check_format(registry.snapshot()[1], registry.root)
        return
    history = [tip for tip in recover.recorded_tips(registry) if tip.runs or tip.tags]
    problem = recover.main_problem(registry)  # again: a racing creator may have published it meanwhile
    if problem is None:
        registry.check_format(registry.snapshot()[1], registry.root)
        return
    if history:
        raise recover.lost_history_error(registry, problem, history[0])
    if not problem.endswith(
        "is missing"
    ):  # junk, or a commit that cannot be read: damage, not a new registry
        raise recover.broken_main_error(registry, problem)
    if recover.any_refs(registry.repo):
        # A racing creator may be publishing `main` while we read: give it a moment before calling the
        # repository foreign.
        if not _main_appears(registry):
            raise RegistryError(
                f"{registry.root} is a git repository but not an ftkit registry (it has no `main` run history)",
                hint="point --registry at an ftkit registry or at a new folder",
            )
        registry.check_format(registry.snapshot()[1], registry.root)
    elif create:
        ensure_first_commit(registry)


def _main_appears(registry: RunRegistry, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while gitops.tip(registry.repo, registry.BRANCH_REF) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
