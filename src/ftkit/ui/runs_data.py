"""What the runs table and the run page show beyond `ftkit show --json` (ftkit/registry/views.py): the filtered
and sorted table rows, a running run's live progress and events (its output folder's `events.jsonl`, the file
`ftkit logs -f` follows: train/event_log.py), the review's suggested next runs as `--set` overrides, samples with a
one-line prompt label, and base vs tuned metric rows. Pure functions over registry summaries and loaded runs,
plus reading the live file; no torch.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ftkit.registry import diff as diffing
from ftkit.registry.answers import prompt_label

FIELD_SORTS = ("started_at", "name", "status", "method")
FILTERS = ("status", "method", "model", "tag")
_NOT_HISTORY = {"time", "kind", "message", "total_steps"}


def live_events(run: dict) -> list[dict] | None:
    """The rows of the run's live `events.jsonl` in its output folder, or None when there is no such file."""
    from ftkit.train.event_log import LIVE_EVENTS_FILE, read_events

    output_dir = run.get("output_dir")
    if not output_dir:
        return None
    path = Path(str(output_dir)) / LIVE_EVENTS_FILE
    try:
        return read_events(path) if path.is_file() else None
    except OSError:
        return None


def events_of(loaded: dict) -> list[dict]:
    """A run's events as `ftkit logs` prints them: the live file's rows when it exists, else the registry's."""
    live = live_events(loaded.get("run") or {})
    return live if live is not None else list(loaded.get("events") or [])


def progress_of(rows: list[dict], total_steps: Any = None) -> dict | None:
    """{step, total_steps, phase, tokens_per_sec, loss} from event rows (the newest progress row, the newest
    phase message), or None when training has not logged a step or a phase yet."""
    step_row = next((r for r in reversed(rows) if r.get("kind") == "progress"), None)
    phase = next((r.get("message") for r in reversed(rows) if r.get("kind") == "phase"), None)
    if step_row is None and phase is None:
        return None
    step_row = step_row or {}
    total = step_row.get("total_steps") or total_steps
    return {
        "step": step_row.get("step"),
        "total_steps": total if isinstance(total, int) else None,
        "phase": phase,
        "tokens_per_sec": step_row.get("tokens_per_sec"),
        "loss": step_row.get("loss"),
    }


def live_history(rows: list[dict]) -> list[dict]:
    """A running run's history so far: its live progress rows as history rows (step, loss, learning_rate, ...)."""
    return [
        {k: v for k, v in row.items() if k not in _NOT_HISTORY}
        for row in rows
        if row.get("kind") == "progress"
    ]


def run_row(summary: dict, progress: dict | None = None) -> dict:
    """One row of the runs table from a registry summary (`RunRegistry.summaries`)."""
    headline = summary.get("headline") or {}
    key = next(iter(headline), None) if isinstance(headline, dict) else None
    return {
        "id": summary["id"],
        "name": summary.get("name"),
        "status": summary.get("status"),
        "method": summary.get("method"),
        "model": summary.get("model"),
        "task": summary.get("task"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("ended_at"),
        "duration_s": summary.get("duration_s"),
        "tags": list(summary.get("tags") or []),
        "parent": summary.get("parent"),
        "metrics": summary.get("metrics") or {},
        "headline": {"key": key, "value": headline[key]} if key is not None else None,
        "progress": progress,
    }


def _matches(row: dict, params: dict[str, str]) -> bool:
    if params.get("status") and row["status"] != params["status"]:
        return False
    if params.get("method") and row["method"] != params["method"]:
        return False
    if params.get("model") and params["model"] not in str(row["model"] or ""):
        return False
    if params.get("tag") and params["tag"] not in row["tags"]:
        return False
    query = (params.get("q") or "").lower()
    if query:
        text = " ".join(str(row[k] or "") for k in ("id", "name", "model", "method", "status"))
        return query in f"{text} {' '.join(row['tags'])}".lower()
    return True


def _sorted(rows: list[dict], sort: str, order: str | None) -> list[dict]:
    """Rows by a field (newest / A→Z by default order) or a metric (best first by default); missing values last."""
    if sort in FIELD_SORTS:
        descending = (order or ("desc" if sort == "started_at" else "asc")) == "desc"
        present = [r for r in rows if r.get(sort) is not None]
        present.sort(key=lambda r: str(r[sort]).lower(), reverse=descending)
        return present + [r for r in rows if r.get(sort) is None]

    def numeric(row: dict) -> bool:
        value = row["metrics"].get(sort)
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    present = [r for r in rows if numeric(r)]
    descending = order == "desc" if order else (diffing.direction(sort) or -1) > 0
    present.sort(key=lambda r: r["metrics"][sort], reverse=descending)
    return present + [r for r in rows if not numeric(r)]


def runs_table(summaries: list[dict], params: dict[str, str], progress: dict[str, dict | None]) -> dict:
    """GET /api/runs: every run (newest first, running, failed, interrupted and lost included) filtered by
    status, method, model (substring), tag and `q` (text in id, name, model, method, status, tags), sorted by
    `sort` (a metric or one of FIELD_SORTS) in `order`, cut to `limit`; with the metric keys and filter values
    of the whole registry. `progress`: run id -> live progress of running runs."""
    rows = [run_row(s, progress.get(s["id"])) for s in summaries]
    choices: dict[str, set] = {name: set() for name in FILTERS}
    metric_keys: set[str] = set()
    for row in rows:
        for name in ("status", "method", "model"):
            if row[name]:
                choices[name].add(row[name])
        choices["tag"].update(row["tags"])
        metric_keys.update(row["metrics"])
    shown = [row for row in rows if _matches(row, params)]
    if params.get("sort"):
        shown = _sorted(shown, params["sort"], params.get("order"))
    elif params.get("order") == "asc":
        shown = shown[::-1]
    total = len(shown)
    limit = params.get("limit")
    if limit:
        shown = shown[: int(limit)]
    return {
        "runs": shown,
        "total": total,
        "metric_keys": sorted(metric_keys),
        "filters": {name: sorted(values) for name, values in choices.items()},
    }


def overrides_of(command: str | None) -> list[str]:
    """The `--set KEY=VALUE` items of a suggested command line, in order."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        return []
    out = []
    for i, word in enumerate(words):
        if word == "--set" and i + 1 < len(words):
            out.append(words[i + 1])
        elif word.startswith("--set="):
            out.append(word[len("--set=") :])
    return out


def review_view(review: Any) -> dict | None:
    """The stored review with each finding's `code` and `next` {command, overrides} (what a button reruns)."""
    if not isinstance(review, dict):
        return None
    findings = []
    for finding in review.get("findings") or []:
        if not isinstance(finding, dict):
            continue
        command = finding.get("command")
        suggestion = {"command": command, "overrides": overrides_of(command)} if command else None
        findings.append({**finding, "code": finding.get("id"), "next": suggestion})
    return {**review, "findings": findings}


def samples_view(samples: list) -> list[dict]:
    """The run's stored answers (fixed prompts, then eval samples as stored), each with a one-line `label`."""
    return [{**row, "label": prompt_label(row.get("prompt"))} for row in samples if isinstance(row, dict)]


def base_vs_tuned(metrics: dict) -> list[dict]:
    """Rows {metric, base, tuned, delta, delta_pct, verdict} for each metric measured on the base model too
    (`base.<metric>` beside `<metric>`)."""
    base = {key[len("base.") :]: value for key, value in metrics.items() if key.startswith("base.")}
    tuned = {key: metrics[key] for key in base if key in metrics}
    return [
        {
            "metric": r["metric"],
            "base": r["a"],
            "tuned": r["b"],
            "delta": r["delta"],
            "delta_pct": r["delta_pct"],
            "verdict": r["verdict"],
        }
        for r in diffing.metric_rows({k: base[k] for k in tuned}, tuned)
    ]
