"""The run registry: one git commit per run, read and written without an index or a work tree.

Layout of a registry folder (default `.ftkit/registry`, else FTKIT_REGISTRY or --registry):

    <registry>/.git/                 a bare git repository (core.bare=true): the history of runs
    <registry>/objects/sha256/ab/…   the content-addressed weights store (never in git; see artifacts.py)

The store sits inside the registry folder, beside `.git`, so one folder holds everything and moving or deleting
the registry moves or deletes both; `objects/` is also listed in `.git/info/exclude`. Nothing is ever checked out.

The tree of branch `main`:

    registry.json                    {"format": 1}; a newer format is refused with a clear message
    README.md                        what this repository is
    runs/<run-id>/…                  the files of one run (records.py)
    evals/<run-id>/<eval-id>/…       an evaluation record of a run (`evals/models/…`: of a plain model; evals.py)
    tags/<name>                      movable, mergeable tags (tags.py)

A commit only ever touches one run's folder `runs/<run-id>/` (committed as `running` before the model loads,
updated at checkpoints, finished: lifecycle.py), published with a compare-and-swap ref update (gitops.py), so
any number of processes can record runs at once. Listing reads the summary cache (summaries.py); sharing
through a git remote is sync.py. Opening checks the folder (opening.py): a lost or broken `main` over existing
history stops every command with the repair command (recover.py). Reads never skip what they cannot read: a run
with an unreadable file is listed as damaged and loading it raises, naming the run and the file (damage.py);
`ftkit registry verify` checks everything (verify.py).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git

from ftkit.errors import RegistryError
from ftkit.registry import damage, evals, gitops, lifecycle, opening, preflight, records, refs, sync, tags
from ftkit.registry import diff as diffing
from ftkit.registry.artifacts import ArtifactStore
from ftkit.registry.evals import EvalRecord
from ftkit.registry.records import RunRecord
from ftkit.registry.summaries import SummaryCache

DEFAULT_PATH = Path(".ftkit") / "registry"
_MAX_ATTEMPTS = 200

__all__ = ["DEFAULT_PATH", "EvalRecord", "RunRecord", "RunRegistry", "default_registry_path"]


def default_registry_path() -> Path:
    """FTKIT_REGISTRY if set, else `.ftkit/registry` under the working directory."""
    env = os.environ.get("FTKIT_REGISTRY")
    return Path(env) if env else Path.cwd() / DEFAULT_PATH


def _name_unknown(summary: dict) -> bool:
    """Whether a run's run.json (so its name, status and time) cannot be read."""
    return any(d["file"] in ("run.json", damage.FOLDER) for d in summary.get("damage", ()))


def _order_key(item: tuple[str, dict]) -> tuple[str, str]:
    """Recording order: commit time, then id (ids alone only order to the second)."""
    run_id, summary = item
    return (str((summary.get("run") or {}).get("committed_at") or ""), run_id)


class RunRegistry:
    """A registry folder: its git history of runs, its tags and its weights store."""

    BRANCH_REF = "refs/heads/main"

    def __init__(self, root: Path, repo: git.Repo):
        self.root = Path(root)
        self.repo = repo
        self.store = ArtifactStore(self.root / "objects")
        self._snapshot: tuple[str, gitops.Entries] | None = None
        self._summaries: dict[str, dict] | None = None
        self._summaries_of: gitops.Entry | None = None  # the runs/ folder entry the summaries describe
        self._actor: git.Actor | None = None
        self._tags: tuple[str, dict[str, str]] | None = None

    # -- opening ------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path | None = None, create: bool = True, check: bool = True) -> RunRegistry:
        """Open (and by default create) the registry at `path`, FTKIT_REGISTRY, or `.ftkit/registry` (opening.py).
        `check=False` (verify, repair) opens a damaged one: only a usable git directory is required."""
        root = (Path(path).expanduser() if path is not None else default_registry_path()).absolute()
        return opening.open_registry(cls, root, create, check)

    def check_format(self, root: gitops.Entries, where: Any) -> None:
        """Refuse a tree that is not an ftkit registry, or one written in a newer format than this ftkit reads."""
        entry = root.get("registry.json")
        records.check_format(gitops.read_object(self.repo, entry.sha, b"blob") if entry else None, where)

    def close(self) -> None:
        """Stop background git processes."""
        gitops.close(self.repo)

    def __enter__(self) -> RunRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the tip and publishing -----------------------------------------------------------------------------------

    def snapshot(self, fresh: bool = False) -> tuple[str, gitops.Entries]:
        """(tip commit sha, root tree entries) of `main`, re-read from disk when `fresh`."""
        if self._snapshot is None or fresh:
            tip = gitops.tip(self.repo, self.BRANCH_REF)
            if tip is None:
                raise RegistryError(
                    f"registry {self.root} has no history", hint="run `ftkit run` to record a run"
                )
            self._snapshot = (tip, gitops.read_tree(self.repo, gitops.commit_tree(self.repo, tip)))
        return self._snapshot

    @property
    def head(self) -> str:
        """The commit sha of the registry's tip."""
        return self.snapshot()[0]

    @property
    def actor(self) -> git.Actor:
        """The git identity commits are made with."""
        if self._actor is None:
            self._actor = gitops.identity(self.repo)
        return self._actor

    def publish(
        self,
        change: Callable[[gitops.Entries], gitops.Entries],
        message: str | Callable[[], str],
        reason: str,
    ) -> str:
        """Commit `change(root entries) -> new root entries` on the tip with compare-and-swap; retry lost races.
        `message` may be a function, called after each `change`, when it depends on the tree the change replaced;
        a change that leaves the tree as it is commits nothing (the tip is returned)."""
        cleared: set[Path] = set()
        for attempt in range(_MAX_ATTEMPTS):
            tip, root = self.snapshot(fresh=True)
            entries = change(dict(root))
            if entries == root:
                return tip
            tree = gitops.write_tree(self.repo, entries.values())
            text = message() if callable(message) else message
            commit = gitops.write_commit(self.repo, tree, [tip], text, self.actor)
            if self.move_tip(commit, tip, entries, reason):
                return commit
            lock = gitops.refusing_lock(self.repo)
            if lock is not None and lock not in cleared:  # a killed writer's lock blocks every later commit
                cleared.add(lock)
                if preflight.remove_killed_writer_lock(Path(self.repo.git_dir), lock):
                    continue
            time.sleep(random.uniform(0.001, 0.005) * min(attempt + 1, 20))
        raise gitops.refused(
            self.repo,
            f"could not record to {self.root}: the registry stayed busy after {_MAX_ATTEMPTS} attempts",
        )

    def move_tip(self, new: str, old: str, entries: gitops.Entries, reason: str) -> bool:
        """Move `main` from `old` to `new` (whose root tree is `entries`) only if it still is at `old`."""
        if not gitops.compare_and_swap(self.repo, self.BRANCH_REF, new, old, reason):
            return False
        self._snapshot = (new, entries)
        return True

    # -- recording ------------------------------------------------------------------------------------------------

    def new_run_id(self) -> str:
        """A fresh run id (`YYYYMMDD-HHMMSS-xxxxxx`), unique in this registry."""
        taken = set(self._load_summaries())
        while True:
            run_id = refs.new_run_id()
            if run_id not in taken:
                return run_id

    def new_run_name(self, run_id: str) -> str:
        """A short adjective-noun name for `run_id`, not yet used in this registry."""
        taken = {s["run"].get("name") for s in self._load_summaries().values()}
        return refs.make_name(run_id, {t for t in taken if t})

    def commit_run(self, record: RunRecord, artifacts: list[dict] | None = None) -> str:
        """Record one finished run as one commit of `runs/<run-id>/` (adding it, or replacing its `running` or
        `lost` folder); returns the commit sha. Same as `finish_run`.

        Files of `record.output_dir` go to the weights store and are listed in artifacts.json, unless `artifacts`
        gives the rows of files already stored (a pending run's, pending.py). Secrets are scrubbed.
        Safe to call from many processes at once.
        """
        return self.finish_run(record, artifacts)

    def start_run(self, record: RunRecord) -> str:
        """Commit `record` as a `running` run before its model loads (lifecycle.py); returns the commit sha."""
        return lifecycle.start(self, record)

    def update_run(self, run_id: str, **facts: Any) -> str:
        """One commit changing only the running run's folder: last_checkpoint={step, path}, resolved=..., ...
        (lifecycle.FACTS); returns the commit sha."""
        return lifecycle.update(self, run_id, **facts)

    def finish_run(self, record: RunRecord, artifacts: list[dict] | None = None) -> str:
        """Replace a run's folder with its final record (succeeded, failed, interrupted); see `commit_run`."""
        try:
            return lifecycle.finish(self, record, artifacts)
        except (BrokenPipeError, ConnectionResetError):
            # A terminal's Ctrl-C signals the whole process group, so GitPython's persistent `git cat-file` helpers
            # died with the run: start fresh ones and record again (nothing was written: the commit is a
            # compare-and-swap of the branch tip).
            gitops.close(self.repo)
            return lifecycle.finish(self, record, artifacts)

    def resume_run(self, run_id: str) -> dict:
        """Make an interrupted, failed or lost run `running` again in this process, under the same id; returns its
        run.json."""
        return lifecycle.resume(self, run_id)

    def remember_run(self, base: gitops.Entry | None, run_id: str, written: dict) -> None:
        """After a commit that changed only `run_id` on top of the `runs/` folder `base`: when the summaries describe
        `base`, update them in place instead of reading them all again. `written`: {tree, run, metrics}."""
        if self._summaries is not None and written and base == self._summaries_of:
            self._summaries[run_id] = dict(written)
            self._summaries_of = self.snapshot()[1].get("runs")

    # -- evaluation records (evals.py) ------------------------------------------------------------------------------

    def commit_eval(self, record: EvalRecord, files: dict[str, Path] | None = None) -> str:
        """Record one evaluation as one commit adding `evals/<run-id>/<eval-id>/`; returns the eval id. `files`
        (artifact name -> path: per-row predictions, judge transcript) go to the weights store, text scrubbed.
        RegistryError (exit 2), nothing written, for a malformed record or a run not in the registry."""
        return evals.commit(self, record, files)

    def evals(self, run_id: str | None = None) -> list[dict]:
        """Evaluation records of run `run_id` (every record when None), newest first; an unreadable one carries
        `damage` instead of raising."""
        return evals.records_of(self, run_id)

    def load_eval(self, ref: str) -> dict:
        """One evaluation record by eval id or unique id prefix (RegistryError when unknown, ambiguous or
        damaged)."""
        return evals.load(self, ref)

    # -- tags (tags.py) -------------------------------------------------------------------------------------------

    def tags(self) -> dict[str, str]:
        """Tag name -> run id."""
        tip, root = self.snapshot()
        if self._tags is None or self._tags[0] != tip:
            self._tags = (tip, tags.read(self.repo, root))
        return dict(self._tags[1])

    def tag(self, ref: str, name: str) -> dict:
        """Point tag `name` at the run `ref` names (moving it if it exists); returns {tag, run, previous}."""
        return tags.move(self, ref, name)

    def untag(self, name: str) -> dict:
        """Remove tag `name`; returns {tag, run}. Unknown tags raise RegistryError listing the tags."""
        return tags.remove(self, name)

    # -- reading runs ---------------------------------------------------------------------------------------------

    def _load_summaries(self) -> dict[str, dict]:
        """run id -> {"tree", "run", "metrics"[, "damage"]} for every run at the snapshot's tip (summaries.py)."""
        tip, root = self.snapshot()
        runs = root.get("runs")
        if self._summaries is None or runs != self._summaries_of:
            try:
                self._summaries = SummaryCache(self.repo).load(runs)
            except RegistryError as error:
                if runs is None or gitops.objects_present(self.repo, [runs.sha]) == [True]:
                    raise
                raise RegistryError(
                    f"registry {self.root}: the runs/ folder of main cannot be read: "
                    f"{damage.object_problem(self.repo, runs.sha)}",
                    hint=damage.repair_hint(self.root),
                ) from error
            self._summaries_of = runs
            unknown = [s for s in self._summaries.values() if _name_unknown(s)]
            if unknown:  # place runs whose run.json cannot be read by the commit that recorded them
                times = damage.commit_times(self.repo, tip)
                for summary in unknown:
                    summary["run"]["committed_at"] = times.get(summary["run"]["id"])
                    summary["time_estimated"] = True
        return self._summaries

    def summaries(self) -> list[dict]:
        """One summary per run, newest first: run.json fields plus `metrics`, `tags` and `headline`."""
        tags_by_run: dict[str, list[str]] = {}
        for name, run_id in sorted(self.tags().items()):
            tags_by_run.setdefault(run_id, []).append(name)
        out = []
        for run_id, item in sorted(self._load_summaries().items(), key=_order_key, reverse=True):
            summary = dict(item["run"])
            summary["id"] = run_id
            summary["metrics"] = item["metrics"]
            summary["tags"] = tags_by_run.get(run_id, [])
            if "damage" in item:
                summary["status"] = "damaged"
                summary["damage"] = item["damage"]
            out.append(summary)
        lifecycle.overlay(self, out)  # a running run whose process is gone shows as lost
        return out

    def list_runs(
        self,
        *,
        status: str | None = None,
        method: str | None = None,
        model: str | None = None,
        tag: str | None = None,
        include_all: bool = False,
        sort: str | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        """Run summaries, newest first (or best first by `sort` metric); failed/interrupted/lost hidden unless asked.
        Damaged runs are never hidden by status, nor by any filter when their run.json cannot be read."""
        runs = self.summaries()
        keep = lambda test: [r for r in runs if test(r) or _name_unknown(r)]  # noqa: E731
        if status:
            runs = [r for r in runs if r.get("status") == status or "damage" in r]
        elif not include_all:
            runs = [r for r in runs if r.get("status") in ("succeeded", "running") or "damage" in r]
        if method:
            runs = keep(lambda r: r.get("method") == method)
        if model:
            runs = keep(lambda r: r.get("model") == model or model in str(r.get("model") or ""))
        if tag:
            runs = keep(lambda r: tag in r["tags"])
        if sort:
            sense = diffing.direction(sort) or -1
            present = [r for r in runs if isinstance(r["metrics"].get(sort), (int, float))]
            missing = [r for r in runs if not isinstance(r["metrics"].get(sort), (int, float))]
            present.sort(key=lambda r: r["metrics"][sort], reverse=sense > 0)
            runs = present + missing
        if limit:
            runs = runs[:limit]
        return runs

    def resolve(self, ref: str) -> str:
        """Turn a reference (id, prefix, name, tag, @latest, @latest~N) into a run id; RegistryError otherwise."""
        runs = [{"id": rid, **{k: s["run"].get(k) for k in ("name", "status", "method", "committed_at")},
                 "unreadable": [d["file"] for d in s.get("damage", [])] if _name_unknown(s) else None}
                for rid, s in sorted(self._load_summaries().items(), key=_order_key, reverse=True)]  # fmt: skip
        return refs.resolve_reference(ref, runs, self.tags())

    def load_run(self, run_id: str) -> dict:
        """Every file of one run, parsed (records.parse), plus its tags and its children."""
        refs.validate_run_id(run_id)
        summary = self._load_summaries().get(run_id)
        if summary is None:
            raise RegistryError(
                f"run {run_id} is not in the registry at {self.root}", hint="`ftkit runs --all` lists runs"
            )
        loaded = self.read_run_folder(run_id, summary["tree"])
        lifecycle.overlay(self, [loaded["run"]])
        loaded["tags"] = sorted(name for name, target in self.tags().items() if target == run_id)
        loaded["children"] = self.children(run_id)
        return loaded

    def read_run_folder(self, run_id: str, tree: str) -> dict:
        """Every file of the run folder `tree`, parsed (read from git, never from the summaries cache);
        records.RunDamaged (a RegistryError) naming each file that cannot be read or parsed."""
        try:
            files = gitops.read_tree(self.repo, tree)
        except RegistryError:
            raise damage.run_error(self.root, run_id, [damage.file_damage(self.repo, tree, "")]) from None
        blobs, found = {}, []
        for name in records.RUN_FILES:
            try:
                blobs[name] = gitops.read_object(self.repo, files[name].sha, b"blob")
            except (KeyError, RegistryError):
                found.append(damage.file_damage(self.repo, tree, name))
        for name in records.OPTIONAL_RUN_FILES:  # absent in older runs; present but unreadable is damage
            if name in files:
                try:
                    blobs[name] = gitops.read_object(self.repo, files[name].sha, b"blob")
                except RegistryError:
                    found.append(damage.file_damage(self.repo, tree, name))
        if found:
            raise damage.run_error(self.root, run_id, found)
        try:
            return records.parse(run_id, blobs)
        except records.RunDamaged as error:
            raise damage.run_error(self.root, run_id, error.damage) from error

    def children(self, run_id: str) -> list[str]:
        """Ids of runs whose parent is `run_id`, oldest first."""
        return sorted(rid for rid, s in self._load_summaries().items() if s["run"].get("parent") == run_id)

    def artifact_path(self, sha256: str) -> Path:
        """Absolute path of a stored artifact."""
        return self.store.path_for(sha256)

    # -- sharing (sync.py) ----------------------------------------------------------------------------------------

    def set_remote(self, name: str, url: str) -> None:
        """Add or change a named remote."""
        sync.set_remote(self, name, url)

    def remotes(self) -> dict[str, str]:
        """Configured remotes: name -> url."""
        return sync.remotes(self)

    def pull(self, remote: str = "origin") -> dict:
        """Fetch the remote registry and merge its runs and tags into this one (no conflicts by construction)."""
        return sync.pull(self, remote)

    def push(self, remote: str = "origin") -> dict:
        """Publish this registry to a git remote; when the remote moved on, pull (merge) first and push again."""
        return sync.push(self, remote)
