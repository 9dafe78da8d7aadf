"""The documents `ftkit show --json` and `ftkit diff --json` print, built from the registry's public API, so the
CLI and `ftkit ui`'s JSON API (ftkit/ui/api_runs.py) serve one data layer. Standard library and the registry only.

    run_view(registry, run_id)          one run: every file of its folder parsed, plus lineage (parent and children
                                        with their names and statuses), overrides, evaluation records, exports, and
                                        each artifact's `stored` state (ok, missing, size differs; no hashing)
    load_pair(registry, ref_a, ref_b)   two loaded runs and their evaluation records lined up by data fingerprint
    diff_payload(a, b, lineup, all)     changed config keys, metrics with deltas, provenance, answers, evals
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.registry import diff as diffing
from ftkit.registry.answers import answer_rows
from ftkit.registry.exports import exports as exports_of

if TYPE_CHECKING:
    from ftkit.registry.store import RunRegistry


def stored_states(registry: RunRegistry, artifacts: list) -> list[str]:
    """For each artifact: "ok" when its stored file exists with the recorded size (no hashing: that is
    `ftkit registry verify`), "missing", or "size differs"."""
    states = []
    for artifact in artifacts:
        try:
            size = registry.artifact_path(str(artifact["sha256"])).stat().st_size
        except (OSError, KeyError, TypeError, ValueError):
            states.append("missing")
            continue
        states.append("ok" if artifact.get("size") in (None, size) else "size differs")
    return states


def run_view(registry: RunRegistry, run_id: str) -> dict[str, Any]:
    """The `ftkit show --json` document of run `run_id` (an id, as `registry.resolve` returns)."""
    loaded = registry.load_run(run_id)
    summaries = {s["id"]: s for s in registry.summaries()}
    evals = registry.evals(run_id)  # a damaged record carries `damage`: shown as such, never an error
    exported = exports_of(registry, run_id)  # likewise

    def brief(rid: str | None) -> dict | None:
        if rid is None:
            return None
        s = summaries.get(rid, {})
        return {"id": rid, "name": s.get("name"), "status": s.get("status"), "in_registry": rid in summaries}

    stored = stored_states(registry, loaded["artifacts"] or [])
    info = loaded["run"]
    payload = dict(loaded)
    payload["lineage"] = {
        "parent": brief(info.get("parent")),
        "children": [brief(c) for c in loaded["children"]],
    }
    payload["overrides"] = list(info.get("overrides") or [])
    payload["registry"] = str(registry.root)
    payload["artifacts"] = [
        {**a, "stored": state} for a, state in zip(loaded["artifacts"] or [], stored, strict=True)
    ]
    payload["evals"] = evals
    payload["exports"] = exported
    return payload


def diff_side(loaded: dict) -> dict:
    """One side's header in a diff: id, name, status, method, model, start, code commit, tags."""
    run, code = loaded["run"], (loaded["env"] or {}).get("code") or {}
    return {
        "id": loaded["id"],
        "name": run.get("name"),
        "status": run.get("status"),
        "method": run.get("method"),
        "model": run.get("model"),
        "started_at": run.get("started_at"),
        "code_commit": code.get("commit"),
        "code_dirty": code.get("dirty"),
        "tags": loaded.get("tags", []),
    }


def build_diff(a: dict, b: dict, include_all: bool = False) -> dict:
    """The diff of two loaded runs: sides, config changes, metric rows, provenance warnings, answers."""
    return {
        "a": diff_side(a),
        "b": diff_side(b),
        "config": diffing.config_changes(a["resolved"], b["resolved"], include_all=include_all),
        "metrics": diffing.metric_rows(a["metrics"], b["metrics"]),
        "provenance": diffing.provenance_warnings(a, b),
        "answers": answer_rows(a.get("samples") or [], b.get("samples") or [], include_all),
    }


def add_evals(payload: dict, lineup: dict) -> dict:
    """Put diffing.eval_lineup's result into a diff payload: `evals` {metrics, records}, notes in provenance."""
    payload["evals"] = {"metrics": lineup["metrics"], "records": lineup["records"]}
    payload["provenance"] = [*payload["provenance"], *lineup["provenance"]]
    return payload


def load_pair(registry: RunRegistry, ref_a: str, ref_b: str) -> tuple[dict, dict, dict]:
    """(run A loaded, run B loaded, their evaluation records lined up: diffing.eval_lineup) for two references."""
    a = registry.load_run(registry.resolve(ref_a))
    b = registry.load_run(registry.resolve(ref_b))
    lineup = diffing.eval_lineup(registry.evals(a["id"]), registry.evals(b["id"]))
    return a, b, lineup


def diff_payload(a: dict, b: dict, lineup: dict, include_all: bool = False) -> dict:
    """The `ftkit diff --json` document of two loaded runs (before gates and Markdown, which the CLI adds)."""
    return add_evals(build_diff(a, b, include_all=include_all), lineup)
