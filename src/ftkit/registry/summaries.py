"""The summary cache: run.json and metrics.json of every run, so `ftkit runs` lists thousands of runs without
reading thousands of files.

It lives at `.git/ftkit-cache/summaries.json`, keyed by the sha of the `runs/` folder and of each run folder, so
it can never be stale: when `runs/` is the one the cache was written for, nothing else is read; otherwise a run
whose folder changed (or that the cache does not know, after a pull) is read from git again, all such runs in one
pipelined `git cat-file` exchange. A damaged or unwritable cache is rebuilt or skipped, never trusted.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import git

from ftkit.errors import RegistryError
from ftkit.registry import gitops

VERSION = 1
_FILES = ("run.json", "metrics.json")


class SummaryCache:
    """run id -> {"tree", "run", "metrics"} for the runs of one registry."""

    def __init__(self, repo: git.Repo):
        self.repo = repo
        self.path = Path(repo.git_dir) / "ftkit-cache" / "summaries.json"

    def load(self, folder: gitops.Entry | None) -> dict[str, dict]:
        """Summaries of every run in the `runs/` folder `folder` (None: no runs yet)."""
        if folder is None:
            return {}
        raw: dict = {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            cached = raw.get("runs", {}) if raw.get("version") == VERSION else {}
        except (OSError, ValueError, AttributeError):
            cached = {}
        if cached and raw.get("runs_tree") == folder.sha:
            return cached
        summaries: dict[str, dict] = {}
        missing = []
        for run_id, entry in gitops.read_tree(self.repo, folder.sha).items():
            hit = cached.get(run_id)
            if hit and hit.get("tree") == entry.sha:
                summaries[run_id] = hit
            else:
                missing.append((run_id, entry.sha))
        summaries.update(self.read(missing))
        self.write(summaries, folder.sha)
        return summaries

    def read(self, runs: list[tuple[str, str]]) -> dict[str, dict]:
        """Summaries of runs given as (id, folder tree sha), read from git in one exchange."""
        if not runs:
            return {}
        blobs = gitops.read_blobs(self.repo, [f"{sha}:{name}" for _, sha in runs for name in _FILES])
        out = {}
        for index, (run_id, sha) in enumerate(runs):
            parsed = []
            for blob, name in zip(blobs[2 * index : 2 * index + 2], _FILES, strict=True):
                try:
                    parsed.append(json.loads(blob) if blob else {})
                except ValueError as error:
                    raise RegistryError(
                        f"run {run_id}: {name} is not valid JSON ({error})", hint="the registry is damaged"
                    ) from error
            run, metrics = parsed
            run.setdefault("id", run_id)
            out[run_id] = {"tree": sha, "run": run, "metrics": metrics}
        return out

    def write(self, summaries: dict[str, dict], folder_sha: str) -> None:
        """Replace the cache file atomically; a read-only registry still lists, just without the cache."""
        try:
            self.path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".summaries-", dir=self.path.parent)
            with os.fdopen(
                fd, "w", encoding="utf-8"
            ) as handle:  # dumps: the C encoder, much faster than dump
                handle.write(
                    json.dumps(
                        {"version": VERSION, "runs_tree": folder_sha, "runs": summaries},
                        separators=(",", ":"),
                    )
                )
            os.replace(tmp, self.path)
        except OSError:
            pass
