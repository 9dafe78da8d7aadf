"""`ftkit registry verify`: check a whole registry and list every damage, with what to do about each.

Checked, in order: git's own `fsck` of the history; that `main` can be read; every run's files (readable and
parseable, read from git, not from the summaries cache); every evaluation record under `evals/` (eval.json and
artifacts.json readable and parseable, its run in the registry; evals.py); every export record under `exports/`
(export.json readable, its run in the registry; exports.py); every artifact listed in any run's or
record's artifacts.json (present in the weights store, of the recorded size, and hashing to its sha256: each stored
file is read once, streamed, however many list it); every tag (readable, pointing at a run of this registry).

A damage item is {"run", "eval", "tag", "file", "object", "problem", "fix"} (None where it does not apply).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ftkit.errors import RegistryError
from ftkit.registry import damage, evals, gitops, recover, tags
from ftkit.registry.records import RunDamaged

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry

Progress = Callable[[int, int], None]  # (bytes hashed so far, bytes to hash)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BUFFER = 8 << 20


def _item(
    problem: str, fix: str, run: str | None = None, file: str | None = None, **extra: str | None
) -> dict:
    return {"run": run, "eval": extra.get("eval"), "tag": extra.get("tag"), "file": file,
            "object": extra.get("object"), "problem": problem, "fix": fix}  # fmt: skip


def fsck(registry: RunRegistry) -> list[str]:
    """git fsck's complaints about the registry's history (none when it is sound), each line once."""
    status, out, err = registry.repo.git.fsck(
        "--full", "--no-dangling", "--no-progress", with_extended_output=True, with_exceptions=False
    )
    if status == 0:
        return []
    lines = [line.strip() for line in f"{err}\n{out}".splitlines()]
    found = list(
        dict.fromkeys(line for line in lines if line and not line.startswith(("Checking", "notice:")))
    )
    return found or [f"git fsck exited {status}"]


def _sha256(path, progress: Callable[[int], None]) -> str:  # noqa: ANN001 - a Path
    digest = hashlib.sha256()
    buffer = bytearray(_BUFFER)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            progress(count)
    return digest.hexdigest()


def verify(registry: RunRegistry, progress: Progress | None = None) -> dict:
    """Check everything (see the module docstring); returns {"ok", "runs", "evals", "artifacts", "bytes",
    "damage", "fsck"}. Never raises for damage: it is the report."""
    repair = f"ftkit registry repair --from REMOTE --registry {registry.root}"
    report: dict = {
        "registry": str(registry.root),
        "ok": True,
        "runs": 0,
        "evals": 0,
        "exports": 0,
        "artifacts": 0,
        "bytes": 0,
    }
    found: list[dict] = []
    report["fsck"] = fsck(registry)
    if report["fsck"]:
        found.append(_item(
            f"git fsck found {len(report['fsck'])} problem(s) in the history, first: {report['fsck'][0]}",
            f"restore the objects: `{repair}`, or {registry.root / '.git'} from a backup",
            file=".git",
        ))  # fmt: skip
    problem = recover.main_problem(registry)
    if problem is not None:
        tips = recover.recorded_tips(registry)
        fix = (
            f"`ftkit registry repair --registry {registry.root}` restores {tips[0].describe()}"
            if tips
            else f"restore the history: `{repair}`"
        )
        found.append(_item(problem, fix, file=registry.BRANCH_REF))
        return {**report, "ok": False, "damage": found}
    _, root = registry.snapshot(fresh=True)
    runs = gitops.subtree(registry.repo, root, "runs")
    listed: dict[str, list[tuple[str | None, dict, str | None]]] = {}  # sha256 -> [(run id, row, eval id)]
    for run_id, entry in sorted(runs.items()):
        report["runs"] += 1
        try:
            loaded = registry.read_run_folder(run_id, entry.sha)
        except RunDamaged as error:
            for bad in error.damage:
                found.append(
                    _item(
                        bad["problem"], f"restore it: `{repair}`", run_id, bad["file"], object=bad["object"]
                    )
                )
            continue
        for row in loaded["artifacts"] if isinstance(loaded["artifacts"], list) else [None]:
            if not isinstance(row, dict) or not _SHA256.match(str(row.get("sha256"))):
                found.append(_item(f"artifacts.json lists a malformed entry: {row!r:.80}",
                                   f"restore it: `{repair}`", run_id, "artifacts.json"))  # fmt: skip
                continue
            listed.setdefault(row["sha256"], []).append((run_id, row, None))
    found += _check_evals(registry, set(runs), listed, report, repair)
    found += _check_exports(registry, set(runs), report, repair)
    found += _check_artifacts(registry, listed, report, progress)
    found += _check_tags(registry, root, set(runs))
    report["ok"] = not found
    report["damage"] = found
    return report


def _check_evals(
    registry: RunRegistry, run_ids: set[str], listed: dict, report: dict, repair: str
) -> list[dict]:
    """Damage in the evaluation records; their artifact rows are added to `listed` for the sha256 check."""
    found: list[dict] = []
    fix = f"restore it: `{repair}`, or evaluate again (`ftkit eval`) to record a new one"
    for record in evals.records_of(registry):
        report["evals"] += record["id"] is not None  # None: a whole group that cannot be read
        run_id, eval_id = record["run"], record["id"]
        for bad in record.get("damage", ()):
            found.append(_item(bad["problem"], fix, run_id, bad["file"], object=bad["object"], eval=eval_id))
        if run_id is not None and run_id not in run_ids:
            found.append(_item(
                f"eval {eval_id} is of run {run_id}, which is not in this registry",
                "pull the registry that has the run (`ftkit registry pull REMOTE`)",
                run_id, f"{evals.FOLDER}/{run_id}", eval=eval_id,
            ))  # fmt: skip
        for row in record.get("artifacts") or []:  # a list: evals.py reports any other shape as damage
            if not isinstance(row, dict) or not _SHA256.match(str(row.get("sha256"))):
                where = f"{evals.FOLDER}/{evals.group_of(run_id)}/{eval_id}/artifacts.json"
                found.append(_item(f"artifacts.json lists a malformed entry: {row!r:.80}", fix, run_id, where,
                                   eval=eval_id))  # fmt: skip
                continue
            listed.setdefault(row["sha256"], []).append((run_id, row, eval_id))
    return found


def _check_exports(registry: RunRegistry, run_ids: set[str], report: dict, repair: str) -> list[dict]:
    """Damage in the export records (exports.py): unreadable records, records of runs not in the registry."""
    from ftkit.registry.exports import FOLDER, exports

    found: list[dict] = []
    for record in exports(registry):
        report["exports"] += record["id"] is not None
        run_id = record["run"]
        for bad in record.get("damage", ()):
            found.append(_item(bad["problem"], f"restore it: `{repair}`, or export the run again",
                               run_id, bad["file"], object=bad.get("object")))  # fmt: skip
        if run_id not in run_ids and record["id"] is not None:
            found.append(_item(
                f"export {record['id']} is of run {run_id}, which is not in this registry",
                "pull the registry that has the run (`ftkit registry pull REMOTE`)",
                run_id, f"{FOLDER}/{run_id}/{record['id']}/export.json",
            ))  # fmt: skip
    return found


def _check_artifacts(
    registry: RunRegistry,
    listed: dict[str, list[tuple[str | None, dict, str | None]]],
    report: dict,
    progress: Progress | None,
) -> list[dict]:
    found: list[dict] = []
    total = sum(rows[0][1].get("size") or 0 for rows in listed.values())
    report["artifacts"], report["bytes"] = len(listed), total
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    advance(0)  # the 0% line, whatever size the first file hashed is
    for sha, rows in sorted(listed.items()):
        path = registry.store.path_for(sha)
        size = rows[0][1].get("size")
        try:
            actual = path.stat().st_size
            problem = None
            if size is not None and actual != size:
                problem = f"is {actual} bytes, recorded as {size}"
            elif _sha256(path, advance) != sha:
                problem = "does not hash to its sha256 (the stored file is garbled)"
        except FileNotFoundError:
            problem = "is missing from the weights store"
        except OSError as error:
            problem = f"cannot be read ({error.strerror or error})"
        if problem is None:
            continue
        for run_id, row, eval_id in rows:
            again = (
                f"train it again: `ftkit rerun {run_id}`"
                if eval_id is None
                else "evaluate again (`ftkit eval`)"
            )
            owner = "run" if eval_id is None else "evaluation"
            found.append(_item(
                f"artifact {row.get('name')} ({path}) {problem}",
                f"copy {registry.store.relative_path(sha)} from a machine that has this {owner} into "
                f"{registry.root}, or {again}",
                run_id, "artifacts.json" if eval_id is None
                else f"{evals.FOLDER}/{evals.group_of(run_id)}/{eval_id}/artifacts.json",
                object=sha, eval=eval_id,
            ))  # fmt: skip
    return found


def _check_tags(registry: RunRegistry, root: gitops.Entries, run_ids: set[str]) -> list[dict]:
    found = []
    try:
        entries = gitops.subtree(registry.repo, root, tags.FOLDER)
    except RegistryError as error:
        return [_item(error.message, "restore it: `ftkit registry repair --from REMOTE`", file=tags.FOLDER)]
    for name, entry in sorted(entries.items()):
        retag = f"move it: `ftkit tag RUN {name}`, or remove it: `ftkit untag {name}`"
        try:
            target = json.loads(gitops.read_object(registry.repo, entry.sha, b"blob")).get("run")
        except RegistryError:
            found.append(_item(damage.object_problem(registry.repo, entry.sha), retag, tag=name,
                               file=f"tags/{name}", object=entry.sha))  # fmt: skip
        except (ValueError, AttributeError):
            found.append(
                _item("not a valid tag file", retag, tag=name, file=f"tags/{name}", object=entry.sha)
            )
        else:
            if target and target not in run_ids:
                found.append(_item(
                    f"tag {name} points at run {target}, which is not in this registry",
                    f"pull the registry that has it (`ftkit registry pull REMOTE`), or {retag}",
                    tag=name, file=f"tags/{name}",
                ))  # fmt: skip
    return found
