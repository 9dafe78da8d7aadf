"""The run registry: one git commit per run, read and written without an index or a work tree.

Layout of a registry folder (default `.ftkit/registry`, else FTKIT_REGISTRY or --registry):

    <registry>/.git/                 a bare git repository (core.bare=true): the history of runs
    <registry>/objects/sha256/ab/…   the content-addressed weights store (never in git; see artifacts.py)

The store sits inside the registry folder, beside `.git`, so one folder holds everything and moving or deleting
the registry moves or deletes both; `objects/` is also listed in `.git/info/exclude`. Nothing is ever checked out.

The tree of branch `main`:

    registry.json                    {"format": 1}; a newer format is refused with a clear message
    README.md                        what this repository is
    runs/<run-id>/run.json           id, name, status, method, model, task, config hash, parent, times, error,
                                     overrides (the `--set KEY=VALUE` list as typed, secrets scrubbed)
                 recipe.yaml         the recipe as given (secrets scrubbed), before the overrides
                 resolved.yaml       every value filled in
                 metrics.json        flat dotted keys
                 history.jsonl       per-step values
                 events.jsonl        run events
                 env.json            package versions, Python, platform, code commit, seed, hardware
                 data.json           data fingerprints and row counts
                 artifacts.json      [{name, sha256, size, path}] pointing into objects/
    tags/<name>                      {"run": id or null (untagged), "at": time}: movable, mergeable tags

A run is one commit that only adds `runs/<run-id>/`, published with a compare-and-swap ref update (gitops.py).
Tags are files rather than git refs so that moving a tag is an ordinary commit that push and pull can merge: two
machines that moved the same tag resolve to the later move.

A summary cache (`.git/ftkit-cache/summaries.json`, keyed by each run folder's tree sha, so it can never be
stale) lets `ftkit runs` list thousands of runs without reading thousands of files.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftkit.errors import RegistryError, UsageError
from ftkit.registry import diff as diffing
from ftkit.registry import refs, scrub, yamlio
from ftkit.registry.artifacts import ArtifactStore
from ftkit.registry.gitops import (
    MODE_BLOB,
    MODE_TREE,
    ZERO_SHA,
    GitCommandError,
    GitRepo,
    TreeEntry,
    parse_tree,
)

FORMAT_VERSION = 1
BRANCH_REF = "refs/heads/main"
MAX_FILE_BYTES = 1 << 20
DEFAULT_PATH = Path(".ftkit") / "registry"
STATUSES = ("succeeded", "failed", "interrupted")
RUN_FILES = (
    "run.json",
    "recipe.yaml",
    "resolved.yaml",
    "metrics.json",
    "history.jsonl",
    "events.jsonl",
    "env.json",
    "data.json",
    "artifacts.json",
)
_CACHE_VERSION = 1
_MAX_ATTEMPTS = 200
_README = """# ftkit run registry

Every commit on `main` adds one run under `runs/<run-id>/` (or moves a tag under `tags/`).
Browse it with `ftkit runs`, `ftkit show RUN`, `ftkit log` and `ftkit diff A B`.
Weights live outside git, in the content-addressed store `objects/sha256/` beside this repository.
"""


@dataclass
class RunRecord:
    """Everything one run commits. `metrics` may be nested; it is stored flat with dotted keys."""

    run_id: str
    status: str
    name: str = ""
    method: str | None = None
    model: str | None = None
    task: str | None = None
    config_hash: str | None = None
    parent: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    recipe_text: str = ""
    overrides: list[str] = field(default_factory=list)
    resolved: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    events: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    output_dir: str | None = None
    error: str | None = None


def default_registry_path() -> Path:
    """FTKIT_REGISTRY if set, else `.ftkit/registry` under the working directory."""
    env = os.environ.get("FTKIT_REGISTRY")
    return Path(env) if env else Path.cwd() / DEFAULT_PATH


def _now_iso() -> str:
    """UTC time with microseconds, so runs and tag moves within one second still order correctly."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _order_key(item: tuple[str, dict]) -> tuple[str, str]:
    """Recording order: commit time, then id (ids alone only order to the second)."""
    run_id, summary = item
    run = summary.get("run") or {}
    return (str(run.get("committed_at") or ""), run_id)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _json_safe(value: Any) -> Any:
    """Non-finite floats become strings ("NaN", "Infinity") so every file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_json_safe(value), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


class RunRegistry:
    """A registry folder: its git history of runs, its tags and its weights store."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.git = GitRepo(self.root / ".git")
        self.store = ArtifactStore(self.root / "objects")
        self._snapshot: tuple[str, dict[str, TreeEntry]] | None = None
        self._summaries: dict[str, dict] | None = None
        self._ident: str | None = None
        self._tags_cache: tuple[str, dict[str, str]] | None = None

    # -- opening ------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path | None = None, create: bool = True) -> RunRegistry:
        """Open (and by default create) the registry at `path`, FTKIT_REGISTRY, or `.ftkit/registry`."""
        root = Path(path).expanduser() if path is not None else default_registry_path()
        root = root.absolute()
        if root.exists() and not root.is_dir():
            raise RegistryError(f"registry path {root} is a file, not a folder", hint="pass --registry DIR")
        git_dir = root / ".git"
        if not git_dir.exists():
            if root.exists() and any(root.iterdir()):
                raise RegistryError(
                    f"{root} is not an ftkit registry: the folder exists, is not empty and has no .git",
                    hint="point --registry (or FTKIT_REGISTRY) at an ftkit registry or at a new folder",
                )
            if not create:
                raise RegistryError(
                    f"no registry at {root}",
                    hint="runs are recorded there by `ftkit run`; pass --registry DIR to use another one",
                )
            registry = cls(root)
            registry._init()
            return registry
        if not git_dir.is_dir() or not (git_dir / "HEAD").is_file() or not (git_dir / "objects").is_dir():
            raise RegistryError(
                f"{root} is not an ftkit registry: {git_dir} is not a usable git directory (corrupt or foreign)",
                hint="point --registry at another folder, or move this one away and let ftkit create a new one",
            )
        registry = cls(root)
        registry._check(create)
        return registry

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        proc = self.git.init()
        if proc.returncode != 0:
            raise RegistryError(
                f"cannot create a registry at {self.root}: {proc.stderr.decode(errors='replace').strip()}",
                hint="check the folder is writable, or pass --registry DIR",
            )
        self.git.run("config", "core.logAllRefUpdates", "true")
        self.git.run("config", "gc.autoDetach", "false")
        exclude = self.git.git_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as handle:
            handle.write("/objects/\n")
        self._ensure_first_commit()

    def _ensure_first_commit(self) -> None:
        if self.git.rev_parse(BRANCH_REF):
            return
        entries = [
            TreeEntry(
                MODE_BLOB, "registry.json", self.git.write_blob(_dumps({"format": FORMAT_VERSION}).encode())
            ),
            TreeEntry(MODE_BLOB, "README.md", self.git.write_blob(_README.encode())),
        ]
        tree = self.git.write_tree(entries)
        commit = self.git.write_commit(tree, [], "Create ftkit run registry", self._identity(), self._when())
        self.git.compare_and_swap(BRANCH_REF, commit, None, "ftkit: create registry")  # a lost race is fine

    def _check(self, create: bool) -> None:
        tip = self.git.rev_parse(BRANCH_REF)
        if tip is None:
            other = self.git.run("for-each-ref", "--count=1", "--format=%(refname)", check=False)
            if other.returncode != 0:
                raise RegistryError(
                    f"{self.root} is not an ftkit registry: git cannot read it (corrupt or foreign)",
                    hint="point --registry at another folder",
                    problems=[other.stderr.decode(errors="replace").strip()],
                )
            if other.stdout.strip():
                raise RegistryError(
                    f"{self.root} is a git repository but not an ftkit registry (it has no `main` run history)",
                    hint="point --registry at an ftkit registry or at a new folder",
                )
            if create:
                self._ensure_first_commit()
            return
        _, root_entries = self._read_snapshot()
        self._check_format(root_entries, self.root)

    def _check_format(self, root_entries: dict[str, TreeEntry], where: Any) -> None:
        entry = root_entries.get("registry.json")
        if entry is None:
            raise RegistryError(
                f"{where} is a git repository but not an ftkit registry (no registry.json at its root)",
                hint="point --registry at an ftkit registry or at a new folder",
            )
        try:
            version = int(json.loads(self.git.read_blob(entry.sha))["format"])
        except (ValueError, KeyError, TypeError) as error:
            raise RegistryError(
                f"{where} has a corrupt registry.json ({error})", hint="restore it from a backup or a remote"
            ) from error
        if version > FORMAT_VERSION:
            raise RegistryError(
                f"{where} was written by a newer ftkit (registry format {version}; this ftkit reads up to "
                f"{FORMAT_VERSION}); nothing was changed",
                hint="upgrade ftkit: pip install -U ftkit",
            )

    def close(self) -> None:
        """Stop background git processes."""
        self.git.close()

    def __enter__(self) -> RunRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low-level reading ----------------------------------------------------------------------------------------

    def _read_snapshot(self, fresh: bool = False) -> tuple[str, dict[str, TreeEntry]]:
        if self._snapshot is None or fresh:
            tip = self.git.rev_parse(BRANCH_REF)
            if tip is None:
                raise RegistryError(
                    f"registry {self.root} has no history", hint="run `ftkit run` to record a run"
                )
            commit = self.git.read_commit(tip)
            self._snapshot = (tip, {e.name: e for e in self.git.read_tree(commit["tree"])})
        return self._snapshot

    def _subtree(self, root_entries: dict[str, TreeEntry], name: str) -> dict[str, TreeEntry]:
        entry = root_entries.get(name)
        if entry is None or not entry.is_tree:
            return {}
        return {e.name: e for e in self.git.read_tree(entry.sha)}

    @property
    def head(self) -> str:
        """The commit sha of the registry's tip."""
        return self._read_snapshot()[0]

    def _run_entries(self) -> dict[str, TreeEntry]:
        return self._subtree(self._read_snapshot()[1], "runs")

    # -- ids and names --------------------------------------------------------------------------------------------

    def new_run_id(self) -> str:
        """A fresh run id (`YYYYMMDD-HHMMSS-xxxxxx`), unique in this registry."""
        taken = set(self._run_entries())
        while True:
            run_id = refs.new_run_id()
            if run_id not in taken:
                return run_id

    def new_run_name(self, run_id: str) -> str:
        """A short adjective-noun name for `run_id`, not yet used in this registry."""
        taken = {s.get("name") for s in self._load_summaries().values()}
        return refs.make_name(run_id, {t for t in taken if t})

    # -- committing -----------------------------------------------------------------------------------------------

    def _identity(self) -> str:
        if self._ident is None:
            proc = self.git.run("var", "GIT_AUTHOR_IDENT", check=False)
            ident = proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else ""
            match = re.match(r"^(.*?<[^>]*>)", ident)
            self._ident = match.group(1) if match else "ftkit <ftkit@localhost>"
        return self._ident

    @staticmethod
    def _when() -> str:
        now = time.time()
        offset = datetime.now().astimezone().utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset else 0
        sign = "+" if minutes >= 0 else "-"
        return f"{int(now)} {sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"

    def _publish(self, change: Any, message: str, reason: str) -> str:
        """Apply `change(root_entries) -> new root entries` on the tip and compare-and-swap; retry on lost races."""
        for attempt in range(_MAX_ATTEMPTS):
            tip, root_entries = self._read_snapshot(fresh=True)
            new_entries = change(dict(root_entries))
            tree = self.git.write_tree(new_entries.values())
            commit = self.git.write_commit(tree, [tip], message, self._identity(), self._when())
            if self.git.compare_and_swap(BRANCH_REF, commit, tip, reason):
                self._snapshot = (commit, new_entries)
                return commit
            time.sleep(random.uniform(0.001, 0.005) * min(attempt + 1, 20))
        raise RegistryError(
            f"could not record to {self.root}: the registry stayed busy after {_MAX_ATTEMPTS} attempts",
            hint="retry; if it persists, check for a stale lock file under .git/refs/heads/",
        )

    def _with_subtree(self, root_entries: dict[str, TreeEntry], name: str, entry: TreeEntry | None,
                      child: str) -> dict[str, TreeEntry]:  # fmt: skip
        sub = self._subtree(root_entries, name)
        if entry is None:
            sub.pop(child, None)
        else:
            sub[child] = entry
        if sub:
            root_entries[name] = TreeEntry(MODE_TREE, name, self.git.write_tree(sub.values()))
        else:
            root_entries.pop(name, None)
        return root_entries

    def _render_files(self, record: RunRecord) -> tuple[dict[str, bytes], dict]:
        env_values = scrub.env_secret_values()
        clean = lambda value: scrub.scrub_data(yamlio.normalize(value), env_values)  # noqa: E731
        metrics = clean(diffing.flatten(record.metrics or {}))
        headline = diffing.headline_metric(metrics)
        started, ended = _parse_time(record.started_at), _parse_time(record.ended_at)
        run = {
            "format": FORMAT_VERSION,
            "id": record.run_id,
            "name": record.name,
            "status": record.status,
            "method": record.method,
            "model": record.model,
            "task": record.task,
            "config_hash": record.config_hash,
            "parent": record.parent,
            "overrides": [_scrub_override(item, env_values) for item in record.overrides or []],
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "duration_s": round((ended - started).total_seconds(), 3) if started and ended else None,
            "committed_at": _now_iso(),
            "output_dir": record.output_dir,
            "error": scrub.scrub_text(record.error, env_values) if record.error else None,
            "headline": {headline: metrics[headline]} if headline else {},
        }
        artifacts: list[dict] = []
        if record.output_dir and Path(record.output_dir).is_dir():
            artifacts = self.store.put_tree(Path(record.output_dir))
        history, thinned_history = self._jsonl(clean(list(record.history or [])))
        events, thinned_events = self._jsonl(clean(list(record.events or [])))
        if thinned_history > 1 or thinned_events > 1:
            run["thinned"] = {"history_every": thinned_history, "events_every": thinned_events}
        files = {
            "run.json": _dumps(clean(run)),
            "recipe.yaml": scrub.scrub_yaml_text(record.recipe_text or "", env_values),
            "resolved.yaml": yamlio.dump(
                clean(record.resolved or {}), header=f"resolved recipe of run {record.run_id}"
            ),
            "metrics.json": _dumps(metrics),
            "history.jsonl": history,
            "events.jsonl": events,
            "env.json": _dumps(clean(record.env or {})),
            "data.json": _dumps(clean(record.data or {})),
            "artifacts.json": _dumps(artifacts),
        }
        out: dict[str, bytes] = {}
        for name, text in files.items():
            scrubbed = scrub.scrub_text(text, [v for v in env_values if '"' not in v and "\\" not in v])
            if scrubbed != text and name.endswith((".json", ".jsonl")) and not _parses(scrubbed, name):
                scrubbed = text  # the structured scrub already ran; never write broken JSON
            data = scrubbed.encode("utf-8")
            if len(data) > MAX_FILE_BYTES:
                raise RegistryError(
                    f"run {record.run_id}: {name} is {len(data) / 1048576:.1f} MiB; registry files are limited to 1 MiB",
                    hint="large outputs belong in the run's output folder (stored in objects/), not in the registry",
                )
            out[name] = data
        return out, run

    @staticmethod
    def _jsonl(rows: list) -> tuple[str, int]:
        """JSON lines; rows are thinned (every k-th, plus the last) when the file would pass 1 MiB."""
        lines = [
            json.dumps(_json_safe(row), sort_keys=True, ensure_ascii=False, allow_nan=False) for row in rows
        ]
        size = sum(len(line.encode()) + 1 for line in lines)
        every = 1
        if size > MAX_FILE_BYTES:
            every = math.ceil(size / (MAX_FILE_BYTES * 0.9))
            kept = lines[::every]
            if (len(lines) - 1) % every:
                kept.append(lines[-1])
            lines = kept
        return ("\n".join(lines) + "\n") if lines else "", every

    def commit_run(self, record: RunRecord) -> str:
        """Record one run as one commit adding `runs/<run-id>/`; returns the commit sha.

        Files of `record.output_dir` go to the weights store and are listed in artifacts.json. Secrets are scrubbed.
        Safe to call from many processes at once.
        """
        refs.validate_run_id(record.run_id)
        if record.status not in STATUSES:
            raise RegistryError(
                f"invalid run status {record.status!r}", hint=f"use one of {', '.join(STATUSES)}"
            )
        if record.parent is not None:
            refs.validate_run_id(record.parent)
        if not record.name:
            record.name = self.new_run_name(record.run_id)
        files, run = self._render_files(record)
        folder = self.git.write_tree(
            TreeEntry(MODE_BLOB, name, self.git.write_blob(data)) for name, data in files.items()
        )
        headline = next(iter(run["headline"].items()), None)
        subject = f"run {record.run_id} {record.name}: {record.method or '?'} on {record.model or '?'}, {record.status}"
        if headline:
            subject += f", {headline[0]}={_fmt(headline[1])}"
        message = f"{subject}\n\nFtkit-Run: {record.run_id}\nFtkit-Status: {record.status}\n"

        def change(root_entries: dict[str, TreeEntry]) -> dict[str, TreeEntry]:
            if record.run_id in self._subtree(root_entries, "runs"):
                raise RegistryError(
                    f"run {record.run_id} is already in the registry", hint="use a new run id"
                )
            return self._with_subtree(
                root_entries, "runs", TreeEntry(MODE_TREE, record.run_id, folder), record.run_id
            )

        commit = self._publish(change, message, f"ftkit: record run {record.run_id}")
        if self._summaries is not None:
            self._summaries[record.run_id] = {
                "tree": folder,
                "run": run,
                "metrics": json.loads(files["metrics.json"]),
            }
        return commit

    # -- tags -----------------------------------------------------------------------------------------------------

    def tags(self) -> dict[str, str]:
        """Tag name -> run id."""
        tip = self._read_snapshot()[0]
        if self._tags_cache is not None and self._tags_cache[0] == tip:
            return dict(self._tags_cache[1])
        out = {}
        for name, entry in self._subtree(self._read_snapshot()[1], "tags").items():
            try:
                target = json.loads(self.git.read_blob(entry.sha)).get("run")
            except ValueError:
                continue
            if target:
                out[name] = target
        self._tags_cache = (tip, out)
        return dict(out)

    def tag(self, ref: str, name: str) -> dict:
        """Point tag `name` at the run `ref` names (moving it if it exists); returns {tag, run, previous}."""
        refs.validate_tag(name)
        run_id = self.resolve(ref)
        previous = self.tags().get(name)
        if previous == run_id:
            return {"tag": name, "run": run_id, "previous": previous}
        blob = self.git.write_blob(_dumps({"run": run_id, "at": _now_iso(), "by": self._identity()}).encode())
        self._publish(
            lambda entries: self._with_subtree(entries, "tags", TreeEntry(MODE_BLOB, name, blob), name),
            f"tag {name} -> {run_id}" + (f" (was {previous})" if previous else ""),
            f"ftkit: tag {name}",
        )
        return {"tag": name, "run": run_id, "previous": previous}

    def untag(self, name: str) -> dict:
        """Remove tag `name`; returns {tag, run}. Unknown tags raise RegistryError listing the tags."""
        current = self.tags()
        if name not in current:
            raise RegistryError(
                f"no tag named {name!r}",
                hint="tags: " + (", ".join(sorted(current)) if current else "none yet (ftkit tag RUN NAME)"),
            )
        blob = self.git.write_blob(_dumps({"run": None, "at": _now_iso(), "by": self._identity()}).encode())
        self._publish(
            lambda entries: self._with_subtree(entries, "tags", TreeEntry(MODE_BLOB, name, blob), name),
            f"untag {name} (was {current[name]})",
            f"ftkit: untag {name}",
        )
        return {"tag": name, "run": current[name]}

    # -- reading runs ---------------------------------------------------------------------------------------------

    def _cache_path(self) -> Path:
        return self.git.git_dir / "ftkit-cache" / "summaries.json"

    def _load_summaries(self) -> dict[str, dict]:
        """run id -> {"tree", "run", "metrics"} for every run, via the tree-sha-keyed cache."""
        if self._summaries is not None:
            return self._summaries
        entries = self._run_entries()
        cached: dict[str, dict] = {}
        try:
            raw = json.loads(self._cache_path().read_text(encoding="utf-8"))
            if raw.get("version") == _CACHE_VERSION:
                cached = raw.get("runs", {})
        except (OSError, ValueError, AttributeError):
            cached = {}
        summaries: dict[str, dict] = {}
        dirty = len(cached) != len(entries)
        missing = []
        for run_id, entry in entries.items():
            hit = cached.get(run_id)
            if hit and hit.get("tree") == entry.sha:
                summaries[run_id] = hit
            else:
                missing.append((run_id, entry.sha))
        if missing:
            dirty = True
            summaries.update(self._read_summaries(missing))
        if dirty:
            self._write_cache(summaries)
        self._summaries = summaries
        return summaries

    def _read_summaries(self, runs: list[tuple[str, str]]) -> dict[str, dict]:
        """Summaries of runs (id, folder tree sha) read from git in two pipelined cat-file exchanges."""
        trees = self.git.read_many([sha for _, sha in runs])
        wanted: list[str] = []
        for (run_id, _), tree in zip(runs, trees, strict=True):
            if tree is None or tree[1] != "tree":
                raise RegistryError(
                    f"run {run_id}: its folder is missing from git", hint="run `git fsck` there"
                )
            files = {e.name: e.sha for e in parse_tree(tree[2])}
            wanted += [files.get("run.json", ZERO_SHA), files.get("metrics.json", ZERO_SHA)]
        blobs = self.git.read_many(wanted)
        out = {}
        for index, (run_id, sha) in enumerate(runs):
            parsed = []
            for blob, name in zip(
                blobs[2 * index : 2 * index + 2], ("run.json", "metrics.json"), strict=True
            ):
                try:
                    parsed.append(json.loads(blob[2]) if blob else {})
                except ValueError as error:
                    raise RegistryError(f"run {run_id}: {name} is not valid JSON ({error})") from error
            run, metrics = parsed
            run.setdefault("id", run_id)
            out[run_id] = {"tree": sha, "run": run, "metrics": metrics}
        return out

    def _write_cache(self, summaries: dict[str, dict]) -> None:
        path = self._cache_path()
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".summaries-", dir=path.parent)
            with os.fdopen(
                fd, "w", encoding="utf-8"
            ) as handle:  # dumps: the C encoder, many times faster than dump
                handle.write(
                    json.dumps({"version": _CACHE_VERSION, "runs": summaries}, separators=(",", ":"))
                )
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only registry still lists, just without the cache

    def _json_file(self, files: dict[str, TreeEntry], name: str, default: Any, run_id: str) -> Any:
        entry = files.get(name)
        if entry is None:
            return default
        try:
            return json.loads(self.git.read_blob(entry.sha))
        except ValueError as error:
            raise RegistryError(
                f"run {run_id}: {name} is not valid JSON ({error})", hint="the registry is damaged"
            ) from error

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
            out.append(summary)
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
        """Run summaries, newest first (or best first by `sort` metric); failed/interrupted hidden unless asked."""
        runs = self.summaries()
        if status:
            runs = [r for r in runs if r.get("status") == status]
        elif not include_all:
            runs = [r for r in runs if r.get("status") == "succeeded"]
        if method:
            runs = [r for r in runs if r.get("method") == method]
        if model:
            runs = [r for r in runs if r.get("model") == model or model in str(r.get("model") or "")]
        if tag:
            runs = [r for r in runs if tag in r["tags"]]
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
        runs = [{"id": rid, **{k: s["run"].get(k) for k in ("name", "status", "method")}}
                for rid, s in sorted(self._load_summaries().items(), key=_order_key, reverse=True)]  # fmt: skip
        return refs.resolve_reference(ref, runs, self.tags())

    def load_run(self, run_id: str) -> dict:
        """Every file of one run, parsed: run, recipe (text), resolved, metrics, history, events, env, data,
        artifacts; plus tags, children and the commit tree sha."""
        refs.validate_run_id(run_id)
        entry = self._run_entries().get(run_id)
        if entry is None:
            raise RegistryError(
                f"run {run_id} is not in the registry at {self.root}", hint="`ftkit runs --all` lists runs"
            )
        files = {e.name: e for e in self.git.read_tree(entry.sha)}

        def text(name: str) -> str:
            return self.git.read_blob(files[name].sha).decode("utf-8") if name in files else ""

        def jsonl(name: str) -> list:
            return [json.loads(line) for line in text(name).splitlines() if line.strip()]

        try:
            resolved = yamlio.load(text("resolved.yaml"))
        except ValueError as error:
            raise RegistryError(f"run {run_id}: resolved.yaml cannot be read ({error})") from error
        loaded = {
            "id": run_id,
            "run": self._json_file(files, "run.json", {}, run_id),
            "recipe": text("recipe.yaml"),
            "resolved_text": text("resolved.yaml"),
            "resolved": resolved,
            "metrics": self._json_file(files, "metrics.json", {}, run_id),
            "history": jsonl("history.jsonl"),
            "events": jsonl("events.jsonl"),
            "env": self._json_file(files, "env.json", {}, run_id),
            "data": self._json_file(files, "data.json", {}, run_id),
            "artifacts": self._json_file(files, "artifacts.json", [], run_id),
        }
        loaded["tags"] = sorted(name for name, target in self.tags().items() if target == run_id)
        loaded["children"] = self.children(run_id)
        return loaded

    def children(self, run_id: str) -> list[str]:
        """Ids of runs whose parent is `run_id`, oldest first."""
        return sorted(rid for rid, s in self._load_summaries().items() if s["run"].get("parent") == run_id)

    def artifact_path(self, sha256: str) -> Path:
        """Absolute path of a stored artifact."""
        return self.store.path_for(sha256)

    # -- sharing --------------------------------------------------------------------------------------------------

    def _remote_arg(self, remote: str) -> str:
        if not remote:
            raise UsageError("empty remote name")
        path = Path(remote).expanduser()
        if "://" not in remote and not re.match(r"^[\w.-]+@[\w.-]+:", remote) and path.exists():
            return str(path.absolute())
        return remote

    def set_remote(self, name: str, url: str) -> None:
        """Add or change a named remote."""
        url = self._remote_arg(url)
        if self.git.run("remote", "get-url", name, check=False).returncode == 0:
            self.git.run("remote", "set-url", name, url)
        else:
            self.git.run("remote", "add", name, url)

    def remotes(self) -> dict[str, str]:
        """Configured remotes: name -> url."""
        out = {}
        proc = self.git.run("remote", "-v", check=False)
        for line in proc.stdout.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = parts[1]
        return out

    def _git_remote_error(self, action: str, remote: str, error: GitCommandError) -> RegistryError:
        return RegistryError(
            f"cannot {action} {remote!r}: {error.stderr.strip().splitlines()[-1] if error.stderr.strip() else error}",
            hint=f"check the remote; add one with `ftkit registry remote origin URL --registry {self.root}`",
        )

    def pull(self, remote: str = "origin") -> dict:
        """Fetch the remote registry and merge its runs and tags into this one (no conflicts by construction)."""
        target = self._remote_arg(remote)
        incoming = f"refs/ftkit/incoming/{os.getpid()}-{random.randrange(1 << 30)}"
        try:
            proc = self.git.run(
                "fetch", "--quiet", "--no-tags", target, f"+{BRANCH_REF}:{incoming}", check=False
            )
            if proc.returncode != 0:
                stderr = proc.stderr.decode(errors="replace")
                if "couldn't find remote ref" in stderr:
                    return {"remote": remote, "result": "remote-empty", "new_runs": [], "tags": []}
                raise self._git_remote_error(
                    "pull from", remote, GitCommandError(["fetch"], proc.returncode, stderr)
                )
            theirs = self.git.rev_parse(incoming)
            assert theirs is not None
            their_root = {e.name: e for e in self.git.read_tree(self.git.read_commit(theirs)["tree"])}
            self._check_format(their_root, f"remote {remote!r}")
            result = self._merge(theirs, their_root, f"Merge runs from {remote}")
        finally:
            self.git.run("update-ref", "-d", incoming, check=False)
        result["remote"] = remote
        return result

    def _merge(self, theirs: str, their_root: dict[str, TreeEntry], message: str) -> dict:
        their_runs = self._subtree(their_root, "runs")
        for attempt in range(_MAX_ATTEMPTS):
            ours, our_root = self._read_snapshot(fresh=True)
            our_runs = self._subtree(our_root, "runs")
            new_runs = sorted(set(their_runs) - set(our_runs))
            if ours == theirs or self.git.is_ancestor(theirs, ours):
                return {"result": "up-to-date", "new_runs": [], "tags": []}
            changed_tags = self._tag_changes(our_root, their_root)
            if self.git.is_ancestor(ours, theirs):
                new_commit, entries, kind = theirs, their_root, "fast-forward"
            else:
                entries = self._merged_root(our_root, their_root)
                tree = self.git.write_tree(entries.values())
                summary = f"{message}: {len(new_runs)} new run(s)"
                new_commit = self.git.write_commit(
                    tree, [ours, theirs], summary, self._identity(), self._when()
                )
                kind = "merged"
            if self.git.compare_and_swap(BRANCH_REF, new_commit, ours, f"ftkit: {message}"):
                self._snapshot = (new_commit, entries)
                self._summaries = None
                return {"result": kind, "new_runs": new_runs, "tags": changed_tags}
            time.sleep(random.uniform(0.001, 0.005) * min(attempt + 1, 20))
        raise RegistryError(f"could not merge into {self.root}: the registry stayed busy", hint="retry")

    def _tag_changes(self, our_root: dict[str, TreeEntry], their_root: dict[str, TreeEntry]) -> list[str]:
        ours, theirs = self._subtree(our_root, "tags"), self._subtree(their_root, "tags")
        merged = self._merge_tags(ours, theirs)
        return sorted(name for name, entry in merged.items() if ours.get(name) != entry)

    def _tag_time(self, entry: TreeEntry) -> tuple[str, str]:
        try:
            payload = json.loads(self.git.read_blob(entry.sha))
            return str(payload.get("at") or ""), entry.sha
        except ValueError:
            return "", entry.sha

    def _merge_tags(self, ours: dict[str, TreeEntry], theirs: dict[str, TreeEntry]) -> dict[str, TreeEntry]:
        merged = dict(ours)
        for name, entry in theirs.items():
            mine = ours.get(name)
            if mine is None or (mine.sha != entry.sha and self._tag_time(entry) > self._tag_time(mine)):
                merged[name] = entry
        return merged

    def _merged_root(
        self, our_root: dict[str, TreeEntry], their_root: dict[str, TreeEntry]
    ) -> dict[str, TreeEntry]:
        merged = dict(our_root)
        for name, entry in their_root.items():
            if name not in merged:
                merged[name] = entry
        runs = {**self._subtree(their_root, "runs"), **self._subtree(our_root, "runs")}
        if runs:
            merged["runs"] = TreeEntry(MODE_TREE, "runs", self.git.write_tree(runs.values()))
        tags = self._merge_tags(self._subtree(our_root, "tags"), self._subtree(their_root, "tags"))
        if tags:
            merged["tags"] = TreeEntry(MODE_TREE, "tags", self.git.write_tree(tags.values()))
        return merged

    def push(self, remote: str = "origin") -> dict:
        """Publish this registry to a git remote; when the remote moved on, pull (merge) first and push again."""
        target = self._remote_arg(remote)
        pulled: list[str] = []
        for _ in range(5):
            proc = self.git.run(
                "push", "--porcelain", "--quiet", target, f"{BRANCH_REF}:{BRANCH_REF}", check=False
            )
            if proc.returncode == 0:
                return {"remote": remote, "result": "pushed", "head": self.head, "merged_runs": pulled}
            stderr = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
            if "rejected" in stderr or "non-fast-forward" in stderr or "fetch first" in stderr:
                pulled += self.pull(remote)["new_runs"]
                continue
            raise self._git_remote_error(
                "push to", remote, GitCommandError(["push"], proc.returncode, stderr)
            )
        raise RegistryError(
            f"push to {remote!r} kept being rejected", hint="someone is pushing right now; retry"
        )


def _scrub_override(override: str, env_values: list[str]) -> str:
    """`KEY=VALUE` with the value redacted when KEY names a secret, and credential-looking text redacted."""
    key, sep, value = override.partition("=")
    if sep and value and scrub.is_secret_key(key.strip()):
        return f"{key}={scrub.REDACTED}"
    return scrub.scrub_text(override, env_values)


def _parses(text: str, name: str) -> bool:
    try:
        if name.endswith(".jsonl"):
            for line in text.splitlines():
                if line.strip():
                    json.loads(line)
        else:
            json.loads(text)
    except ValueError:
        return False
    return True


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
