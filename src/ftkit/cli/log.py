"""`ftkit log`: the run history as a timeline — for each run, what changed since the run before it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._output import Output
from ftkit.cli._runs_common import (
    ago,
    colour,
    fmt,
    fmt_delta,
    json_option,
    open_or_none,
    registry_option,
    short_model,
    status_markup,
)
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
    if limit and len(runs) > limit:
        entries = entries[1:]
    entries.reverse()
    out.emit({"registry": str(reg.root), "runs": entries})
    if json_mode:
        return
    if not entries:
        out.note("no runs" + ("" if all_ else " (failed and interrupted runs are hidden; --all shows them)"))
        return
    for entry in entries:
        tags = f" [cyan]({escape(', '.join(entry['tags']))})[/cyan]" if entry["tags"] else ""
        out.print(
            f"[bold]{escape(entry['id'])}[/bold] {escape(entry['name'] or '')}{tags}  {status_markup(entry['status'])}  "
            f"{escape(entry['method'] or '?')} on {escape(short_model(entry['model']))}  [dim]{ago(entry['ended_at'])}[/dim]"
        )
        if entry["parent"]:
            out.print(f"    [dim]rerun of {escape(entry['parent'])}[/dim]")
        for row in entry["metrics"]:
            delta, pct = fmt_delta(row["delta"], row["delta_pct"])
            change = (
                f" ({colour(delta, row['verdict'])}{', ' + colour(pct, row['verdict']) if pct else ''})"
                if delta
                else ""
            )
            out.print(f"    {escape(row['metric'])} {escape(fmt(row['b']))}{change}")
        changes = entry["changes"]
        for change in changes[:_MAX_KEYS]:
            out.print(
                f"    [yellow]~[/yellow] {escape(change['key'])}: {escape(fmt(change['a']))} → {escape(fmt(change['b']))}"
            )
        if len(changes) > _MAX_KEYS:
            out.print(f"    [dim]… {len(changes) - _MAX_KEYS} more changed keys (ftkit diff shows all)[/dim]")
        if entry["compared_with"] and not changes:
            out.print("    [dim]config unchanged[/dim]")
        out.print("")


def register(app: typer.Typer) -> None:
    """Add `ftkit log`."""
    app.command("log")(log_command)
