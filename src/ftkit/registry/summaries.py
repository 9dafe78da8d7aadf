"""The summary cache: run.json and metrics.json of every run, so `ftkit runs` lists thousands of runs without
reading thousands of files.

It lives at `.git/ftkit-cache/summaries.json`, keyed by the sha of the `runs/` folder and of each run folder: when
`runs/` is the one the cache was written for, nothing else is read; otherwise a run whose folder changed (or that
the cache does not know, after a pull) is read from git again, all such runs in one pipelined `git cat-file`
exchange. The file also holds a sha256 of its payload bound to that `runs/` sha, so a cache edited by hand (fake
metrics under a matching `runs/` sha) or damaged in any way (wrong types, empty, binary) is rebuilt from git,
never trusted and never an error.

A run whose run.json or metrics.json is missing, unreadable or not a JSON object is returned with a `damage` list
(damage.py) and is never cached, so it is read again, and reported again, until it is repaired.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import git

from ftkit.registry import damage, gitops

VERSION = 2
_FILES = ("run.json", "metrics.json")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_RUNS_KEY = b',"runs":'


def _digest(folder_sha: str, payload: bytes) -> str:
    return hashlib.sha256(folder_sha.encode() + b"\n" + payload).hexdigest()


def _valid(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("tree"), str)
        and bool(_SHA.match(entry["tree"]))
        and isinstance(entry.get("run"), dict)
        and isinstance(entry.get("metrics"), dict)
        and "damage" not in entry
    )


class SummaryCache:
    """run id -> {"tree", "run", "metrics"[, "damage"]} for the runs of one registry."""

    def __init__(self, repo: git.Repo):
        self.repo = repo
        self.path = Path(repo.git_dir) / "ftkit-cache" / "summaries.json"

    def cached(self) -> tuple[str | None, dict[str, dict]]:
        """(the `runs/` sha the cache was written for, its valid entries); (None, {}) for a missing, damaged or
        edited cache."""
        try:
            raw = self.path.read_bytes()
            cut = raw.index(_RUNS_KEY)
            header = json.loads(raw[:cut] + b"}")
            payload = raw[cut + len(_RUNS_KEY) : -1]
            if (
                not isinstance(header, dict)
                or header.get("version") != VERSION
                or not isinstance(header.get("runs_tree"), str)
                or header.get("sha256") != _digest(header["runs_tree"], payload)
                or not raw.endswith(b"}")
            ):
                return None, {}
            runs = json.loads(payload)
        except (OSError, ValueError):  # missing, unreadable, not JSON, not UTF-8, no payload
            return None, {}
        if not isinstance(runs, dict):
            return None, {}
        return header["runs_tree"], {k: v for k, v in runs.items() if _valid(v)}

    def load(self, folder: gitops.Entry | None) -> dict[str, dict]:
        """Summaries of every run in the `runs/` folder `folder` (None: no runs yet)."""
        if folder is None:
            return {}
        built_for, cached = self.cached()
        if cached and built_for == folder.sha:
            return cached
        summaries: dict[str, dict] = {}
        missing = []
        for run_id, entry in gitops.read_tree(self.repo, folder.sha).items():
            hit = cached.get(run_id)
            if hit and hit["tree"] == entry.sha:
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
            parsed: list[dict] = []
            found: list[dict] = []
            for blob, name in zip(blobs[2 * index : 2 * index + 2], _FILES, strict=True):
                value: object = None
                if blob is None:
                    found.append(damage.file_damage(self.repo, sha, name))
                else:
                    try:
                        value = json.loads(blob)
                    except ValueError as error:
                        found.append(damage.item(name, f"not valid JSON ({error})"))
                    else:
                        if not isinstance(value, dict):
                            found.append(damage.item(name, "not a JSON object"))
                parsed.append(value if isinstance(value, dict) else {})
            run, metrics = parsed
            run["id"] = run_id
            out[run_id] = {"tree": sha, "run": run, "metrics": metrics}
            if found:
                out[run_id]["damage"] = found
        return out

    def write(self, summaries: dict[str, dict], folder_sha: str) -> None:
        """Replace the cache file atomically, leaving damaged runs out (and then binding it to no `runs/` sha, so
        they are read again); a read-only registry still lists, just without the cache."""
        healthy = {run_id: s for run_id, s in summaries.items() if "damage" not in s}
        bound_to = folder_sha if len(healthy) == len(summaries) else ""
        payload = json.dumps(
            healthy, separators=(",", ":")
        ).encode()  # dumps: the C encoder, faster than dump
        header = json.dumps(
            {"version": VERSION, "runs_tree": bound_to, "sha256": _digest(bound_to, payload)},
            separators=(",", ":"),
        ).encode()
        try:
            self.path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".summaries-", dir=self.path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(header[:-1] + _RUNS_KEY + payload + b"}")
            os.replace(tmp, self.path)
        except OSError:
            pass
