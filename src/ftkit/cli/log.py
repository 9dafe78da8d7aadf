"""`ftkit log`: the run history as a timeline — for each run, what changed since the run before it."""

from __future__ import annotations

from pathlib import Path

import typer

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import STATUS_STYLE, VERDICT_STYLE, open_or_none
from ftkit.cli.formatting import ago, fmt, fmt_delta, unique_prefixes
from ftkit.cli.table_fit import plain_value
from ftkit.registry import diff as diffing

_MAX_KEYS = 8


def build_timeline(reg, runs: list[dict]) -> list[dict]:  # noqa: ANN001 - RunRegistry, imported lazily
    """Entries oldest-first (`runs` comes newest first): each run with its changed config keys and headline metric delta vs the previous run."""
    entries: list[dict] = []
    previous: dict | None = None
    for summary in reversed(runs):
        loaded = reg.load_run(summary["id"])
        entry = {
            "id": summary["id"],
            "name": summary.get("name"),
            "status": summary.get("status"),
            "method": summary.get("method"),
            "model": summary.get("model"),
            "parent": summary.get("parent"),
            "trained_from": (summary.get("model_run") or {}).get("run"),  # `model: run:<ref>`
            "tags": summary.get("tags", []),
            "ended_at": summary.get("ended_at"),
            "compared_with": previous["id"] if previous else None,
            "changes": [],
            "metrics": [],
        }
        headline = diffing.headline_metric(loaded["metrics"])
        if previous is not None:
            entry["changes"] = diffing.config_changes(previous["resolved"], loaded["resolved"])
            for key in dict.fromkeys(
                k for k in (headline, diffing.headline_metric(previous["metrics"])) if k
            ):
                rows = diffing.metric_rows(
                    {key: previous["metrics"].get(key)}, {key: loaded["metrics"].get(key)}
                )
                entry["metrics"].extend(rows)
        elif headline:
            entry["metrics"] = diffing.metric_rows({}, {headline: loaded["metrics"][headline]})
        entries.append(entry)
        previous = loaded
    return entries


def log_command(
    all_: bool = typer.Option(False, "--all", "-a", help="Include failed and interrupted runs."),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show the last N runs (0: all)."),
    method: str | None = typer.Option(None, "--method", help="Only runs of this method."),
    model: str | None = typer.Option(None, "--model", help="Only runs whose base model contains this text."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Show the history of runs, newest first, with what changed from each run to the next."""
    out = Output(json_mode)
    reg = open_or_none(registry)
    if reg is None:
        out.note("no runs yet: `ftkit run recipe.yaml` records one")
        out.emit({"runs": []})
        return
    with reg:
        runs = reg.list_runs(include_all=all_, method=method, model=model)
        # one extra (older) run so the oldest shown entry still has something to compare with
        window = runs[: limit + 1] if limit else runs
        entries = build_timeline(reg, window)
        every_run = reg.summaries() if entries and not json_mode else []
    if limit and len(runs) > limit:
        entries = entries[1:]
    entries.reverse()
    out.emit({"registry": str(reg.root), "runs": entries})
    if json_mode:
        return
    if not entries:
        out.note("no runs" + ("" if all_ else " (failed and interrupted runs are hidden; --all shows them)"))
        return
    if out.is_terminal:
        short = unique_prefixes((r["id"] for r in every_run), (r.get("name") or "" for r in every_run))
        for entry in entries:
            _print_entry(out, entry, short)
    else:
        for entry in entries:
            for record in plain_records(entry):
                out.line("\t".join(plain_value(value) for value in record))


def plain_records(entry: dict) -> list[list]:
    """The piped form of one timeline entry: tab-separated records, each led by its kind and the run id.

    `run ID NAME STATUS METHOD MODEL ENDED TAGS PARENT`, then `metric ID KEY VALUE DELTA DELTA%` and
    `change ID KEY A B` lines.
    """
    run_id = entry["id"]
    records = [
        ["run", run_id, entry["name"], entry["status"], entry["method"], entry["model"], entry["ended_at"],
         entry["tags"], entry["parent"]],
    ]  # fmt: skip
    records += [["metric", run_id, r["metric"], r["b"], r["delta"], r["delta_pct"]] for r in entry["metrics"]]
    records += [["change", run_id, c["key"], c["a"], c["b"]] for c in entry["changes"]]
    return records


def _print_entry(out: Output, entry: dict, short: dict[str, str]) -> None:
    """One run of the timeline in a terminal: a head line and indented details, each cut to the width."""
    from rich.text import Text

    head = Text()
    head.append(short.get(entry["id"], entry["id"]), style="bold")
    head.append(f" {entry['name'] or ''}  ")
    head.append(entry["status"] or "?", style=STATUS_STYLE.get(entry["status"] or ""))
    head.append(f"  {entry['method'] or '?'} on ")
    model = entry["model"] or "—"
    room = max(out.width - head.cell_len, 12)
    if (
        len(model) > room
    ):  # the end of a model id or path says which it is; age and tags give way (`ftkit runs` has them)
        head.append("…" + model[len(model) - room + 1 :])
    else:
        head.append(model)
        head.append(f"  {ago(entry['ended_at'])}", style="dim")  # what does not fit from here on is cut
        if entry["tags"]:
            head.append(f"  ({', '.join(entry['tags'])})", style="cyan")
    out.line(head)
    if entry["parent"]:
        how = "trained from" if entry.get("trained_from") == entry["parent"] else "rerun of"
        out.line(Text(f"    {how} {short.get(entry['parent'], entry['parent'])}", style="dim"))
    for row in entry["metrics"]:
        delta, pct = fmt_delta(row["delta"], row["delta_pct"])
        line = Text(f"    {row['metric']} {fmt(row['b'])}")
        if delta:
            style = VERDICT_STYLE.get(row["verdict"] or "")
            line.append(" (")
            line.append(delta, style=style)
            if pct:
                line.append(", ")
                line.append(pct, style=style)
            line.append(")")
        out.line(line)
    changes = entry["changes"]
    for change in changes[:_MAX_KEYS]:
        line = Text("    ")
        line.append("~", style="yellow")
        line.append(f" {change['key']}: {fmt(change['a'])} → {fmt(change['b'])}")
        out.line(line)
    if len(changes) > _MAX_KEYS:
        out.line(
            Text(f"    … {len(changes) - _MAX_KEYS} more changed keys (ftkit diff shows all)", style="dim")
        )
    if entry["compared_with"] and not changes:
        out.line(Text("    config unchanged", style="dim"))
    out.line("")


def register(app: typer.Typer) -> None:
    """Add `ftkit log`."""
    app.command("log")(log_command)
