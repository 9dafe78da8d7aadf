"""A lost or broken `main`: find the history it pointed at, refuse to start a new one over it, and restore it.

`refs/heads/main` can vanish (deleted by hand), hold junk, or point at a commit that cannot be read (a truncated
pack, a lost object). The runs are then still there, in the objects, and git remembers where `main` was: its
reflog (`logs/refs/heads/main`, `logs/HEAD`), remote-tracking refs (`refs/remotes/*/main`), `ORIG_HEAD`, an older
entry in `packed-refs`. Opening such a registry (opening.py) raises RegistryError (exit 2) naming what happened and
`ftkit registry repair`, for readers and writers alike, so no command ever records a run on a new, empty history
that would hide the old one. `repair` moves `main` back to the newest readable recorded tip (reflog first, then
remote refs, ORIG_HEAD, packed-refs, and only when git recorded nothing, the commit objects themselves), or first
refetches every object from a remote (`--from REMOTE`) when the local objects are damaged. Junk is moved aside
into `.git/ftkit-damaged/`, never deleted.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import git

from ftkit.errors import RegistryError
from ftkit.registry import damage, gitops

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

BRANCH = "refs/heads/main"


@dataclass
class Tip:
    """A commit `main` once pointed at, where git recorded it, and what its tree holds."""

    source: str
    sha: str
    runs: int
    tags: int
    when: int

    def describe(self) -> str:
        """`commit abc123 (3 runs) from the reflog of refs/heads/main`."""
        return f"commit {self.sha[:12]} ({self.runs} run(s)) from {self.source}"


def main_problem(registry: RunRegistry) -> str | None:
    """What is wrong with `main` (None when it and its tree can be read)."""
    repo = registry.repo
    sha = gitops.tip(repo, BRANCH)
    if sha is None:
        loose = Path(repo.git_dir) / BRANCH
        if loose.is_file():
            try:
                held = loose.read_bytes()[:60].decode("utf-8", "replace").strip()
            except OSError as error:
                held = f"unreadable: {error.strerror}"
            return f"{BRANCH} is not a valid reference (it holds {held!r})"
        return f"{BRANCH} is missing"
    try:
        gitops.read_tree(repo, gitops.commit_tree(repo, sha))
    except RegistryError:
        return (
            f"{BRANCH} points at commit {sha[:12]}, which cannot be read: {damage.object_problem(repo, sha)}"
        )
    return None


def head_problem(git_dir: Path) -> str | None:
    """What is wrong with HEAD of an ftkit registry's git folder (None when it is fine, or the folder does not
    look like a registry: no objects/ folder, or no trace of `main`)."""
    git_dir = Path(git_dir)
    traces = (git_dir / BRANCH, git_dir / "logs" / BRANCH, git_dir / "packed-refs")
    if not (git_dir / "objects").is_dir() or not any(path.exists() for path in traces):
        return None
    try:
        held = (git_dir / "HEAD").read_bytes()[:80].decode("utf-8", "replace")
    except FileNotFoundError:
        return f"{git_dir / 'HEAD'} is missing"
    except OSError as error:
        return f"{git_dir / 'HEAD'} cannot be read ({error.strerror})"
    if held.strip() == f"ref: {BRANCH}":
        return None
    return f"{git_dir / 'HEAD'} does not name {BRANCH} (it holds {held.strip()!r:.60})"


def broken_head_error(root: Path, problem: str) -> RegistryError:
    """Exit 2: HEAD of a registry is damaged; its runs are untouched."""
    return RegistryError(
        f"registry {root}: {problem}; git cannot open it, but its runs are untouched; nothing was changed",
        hint=f"restore it: `ftkit registry repair --registry {root}`",
    )


def repair_head(git_dir: Path) -> str | None:
    """Point HEAD back at `main` when it is damaged (the old file moved into `.git/ftkit-damaged/`); returns the
    problem fixed, or None."""
    git_dir = Path(git_dir)
    problem = head_problem(git_dir)
    if problem is None:
        return None
    if (git_dir / "HEAD").exists():
        _aside(git_dir, git_dir / "HEAD")
    (git_dir / "HEAD").write_text(f"ref: {BRANCH}\n", encoding="utf-8")
    return problem


def _inspect(repo: git.Repo, sha: str, source: str) -> Tip | None:
    """The Tip for `sha` when it is a readable commit of an ftkit registry, else None."""
    try:
        commit = git.Commit(repo, bytes.fromhex(sha))
        root = gitops.read_tree(repo, commit.tree.hexsha)
        when = int(commit.committed_date)
        if "registry.json" not in root:
            return None
        runs, tags = (len(gitops.subtree(repo, root, name)) for name in ("runs", "tags"))
    except (ValueError, git.BadObject, RegistryError, git.GitCommandError):
        return None
    return Tip(source, sha, runs, tags, when)


def _reflog(repo: git.Repo, name: str) -> list[str]:
    """Shas a reflog recorded, newest first (unparseable lines skipped)."""
    shas = []
    for line in _lines(Path(repo.git_dir) / "logs" / name):
        try:
            shas.append(git.RefLogEntry.from_line(line.encode()).newhexsha)
        except ValueError:
            continue
    return [sha for sha in reversed(shas) if sha != gitops.ZERO_SHA]


def _recorded(repo: git.Repo) -> list[tuple[str, str]]:
    """(sha, where git recorded it) for every place `main` may have been, most trusted first."""
    found = [(sha, f"the reflog of {BRANCH}") for sha in _reflog(repo, BRANCH)]
    found += [(sha, "the reflog of HEAD") for sha in _reflog(repo, "HEAD")]
    _, listing, _ = repo.git.for_each_ref(
        "--format=%(objectname) %(refname)", "refs/remotes/*/main", "refs/ftkit/incoming/*",
        with_extended_output=True, with_exceptions=False,
    )  # fmt: skip
    found += [tuple(line.split(" ", 1)) for line in listing.splitlines() if " " in line]  # type: ignore[misc]
    git_dir = Path(repo.git_dir)
    found += [(line.strip(), "ORIG_HEAD") for line in _lines(git_dir / "ORIG_HEAD")[:1]]
    for line in _lines(git_dir / "packed-refs"):
        sha, _, name = line.partition(" ")
        if name == BRANCH:
            found.append((sha, "packed-refs"))
    return found


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def any_refs(repo: git.Repo) -> bool:
    """Whether the repository has any readable ref (broken ones are ignored, as git itself ignores them)."""
    _, listing, _ = repo.git.for_each_ref(
        "--count=1", "--format=%(refname)", with_extended_output=True, with_exceptions=False
    )
    return bool(listing.strip())


def _objects(repo: git.Repo) -> list[str]:
    """Every commit object in the repository (the last resort: git recorded no tip anywhere)."""
    _, out, _ = repo.git.cat_file(
        "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)",
        with_extended_output=True, with_exceptions=False,
    )  # fmt: skip
    return [line.split()[0] for line in out.splitlines() if line.endswith(" commit")]


def recorded_tips(registry: RunRegistry, scan_objects: bool = True) -> list[Tip]:
    """Readable ftkit commits `main` pointed at, best first: the newest reflog entry, then remote refs (most runs
    first), ORIG_HEAD, packed-refs; when none of those can be read and the repository has no ref at all, commit
    objects with the most runs, newest first."""
    repo, tips, seen = registry.repo, [], set()
    for sha, source in _recorded(repo):
        if sha not in seen and len(sha) == 40:
            seen.add(sha)
            tip = _inspect(repo, sha, source)
            if tip is not None:
                tips.append(tip)
    reflog = [t for t in tips if t.source.startswith("the reflog")][:1]
    others = sorted(
        (t for t in tips if not t.source.startswith("the reflog")), key=lambda t: (-t.runs, -t.when)
    )
    if reflog or others or not scan_objects or any_refs(repo):
        return reflog + others
    loose = [t for sha in _objects(repo) if (t := _inspect(repo, sha, "a commit object")) is not None]
    return sorted(loose, key=lambda t: (-t.runs, -t.when))


def lost_history_error(registry: RunRegistry, problem: str, tip: Tip) -> RegistryError:
    """Exit 2: `main` is gone or broken but the history is there; nothing was changed."""
    return RegistryError(
        f"registry {registry.root}: {problem}; its history is still there ({tip.describe()}); nothing was "
        "changed and no run was recorded",
        hint=f"restore it: `ftkit registry repair --registry {registry.root}`",
    )


def broken_main_error(registry: RunRegistry, problem: str) -> RegistryError:
    """Exit 2: `main` is broken and no earlier state of it can be read here."""
    return RegistryError(
        f"registry {registry.root}: {problem}; no earlier state of it can be read here (reflog, remote refs, "
        "ORIG_HEAD, packed-refs); nothing was changed",
        hint=f"restore the history from a registry you pushed to or pulled from: `ftkit registry repair --from "
        f"REMOTE --registry {registry.root}`; `ftkit registry verify --registry {registry.root}` lists the damage",
    )


def _aside(git_dir: Path | str, path: Path) -> Path:
    """Move a damaged file into `.git/ftkit-damaged/` (kept for inspection, out of git's way)."""
    target = Path(git_dir) / "ftkit-damaged" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target.mkdir(parents=True, exist_ok=True)
    moved = target / path.name
    shutil.move(str(path), moved)
    return moved


def _move_main(registry: RunRegistry, new: str, moved: list[str]) -> None:
    repo = registry.repo
    loose = Path(repo.git_dir) / BRANCH
    if (
        loose.is_file()
    ):  # junk, or a commit that cannot be read: kept aside, and the reflog gains no bad entry
        moved.append(str(_aside(repo.git_dir, loose)))
    for _ in range(50):
        if gitops.compare_and_swap(repo, BRANCH, new, gitops.tip(repo, BRANCH), "ftkit: registry repair"):
            return
        time.sleep(0.01 + random.random() * 0.02)
    raise gitops.refused(repo, f"could not move {BRANCH} of {registry.root} to {new[:12]}")


def _refetch(registry: RunRegistry, remote: str, moved: list[str]) -> Tip:
    """Fetch every object of REMOTE's main again (git fetch --refetch), prefer them over damaged local copies,
    and return the fetched tip."""
    from ftkit.registry import sync  # its remote-name handling and git-message reporting, shared with pull

    repo = registry.repo
    incoming = f"refs/ftkit/refetch/{os.getpid()}-{random.randrange(1 << 30)}"
    try:
        status, _, stderr = repo.git.fetch(
            "--refetch", "--quiet", "--no-tags", "--no-write-fetch-head", sync._target(remote),
            f"+{BRANCH}:{incoming}", with_extended_output=True, with_exceptions=False,
        )  # fmt: skip
        if status != 0:
            raise sync._failed(registry, "fetch from", remote, stderr)
        tip = _inspect(repo, gitops.tip(repo, incoming) or gitops.ZERO_SHA, f"remote {remote!r}")
    finally:
        repo.git.update_ref("-d", incoming, with_exceptions=False)
    repo.git.prune_packed(
        with_exceptions=False
    )  # loose copies (damaged ones included) of what the pack now holds
    _set_aside_damaged_packs(registry, moved)
    if tip is None:
        raise RegistryError(
            f"remote {remote!r} has no readable ftkit registry on {BRANCH}", hint="check the remote"
        )
    return tip


def _set_aside_damaged_packs(registry: RunRegistry, moved: list[str]) -> None:
    """Move aside each pack that fails `git verify-pack` when every object it indexes is present without it
    (after a refetch); a pack still holding something found nowhere else stays where it is."""
    repo = registry.repo
    for index in sorted((Path(repo.git_dir) / "objects" / "pack").glob("pack-*.idx")):
        if repo.git.verify_pack(str(index), with_extended_output=True, with_exceptions=False)[0] == 0:
            continue
        with open(index, "rb") as handle:
            _, listing, _ = repo.git.show_index(
                istream=handle, with_extended_output=True, with_exceptions=False
            )
        shas = [line.split()[1] for line in listing.splitlines() if len(line.split()) >= 2]
        parts = sorted(index.parent.glob(index.stem + ".*"))
        held = Path(repo.git_dir) / "ftkit-damaged" / f"pack-check-{os.getpid()}"
        held.mkdir(parents=True, exist_ok=True)
        for part in parts:
            shutil.move(str(part), held / part.name)
        unique = not all(gitops.objects_present(repo, shas))
        for part in parts:
            if unique:
                shutil.move(str(held / part.name), part)
            else:
                moved.append(str(_aside(repo.git_dir, held / part.name)))
        shutil.rmtree(held, ignore_errors=True)


def repair(registry: RunRegistry, remote: str | None = None) -> dict:
    """Restore `main` (see the module docstring); with `remote`, refetch every object from it first. Returns
    {"problem" (what was wrong with main, or None), "restored" (where main was moved, or None: it was sound, or
    readable again after the refetch), "fetched", "moved_aside"}; RegistryError (exit 2) when nothing can be
    restored."""
    moved: list[str] = []
    before = main_problem(registry)
    fetched = _refetch(registry, remote, moved) if remote else None
    problem = main_problem(registry) if fetched else before
    restored = None
    if problem is not None:
        tips = recorded_tips(registry)
        if fetched is not None:
            tips = (
                tips[:1] + [fetched] + tips[1:]
                if tips and tips[0].source.startswith("the reflog")
                else [fetched]
            )
        if not tips:
            raise broken_main_error(registry, problem)
        _move_main(registry, tips[0].sha, moved)
        restored = {"sha": tips[0].sha, "source": tips[0].source, "runs": tips[0].runs}
    return {
        "problem": before,
        "restored": restored,
        "fetched": {"remote": remote, "sha": fetched.sha, "runs": fetched.runs} if fetched else None,
        "moved_aside": moved,
    }
