"""`ftkit runs`: the table of recorded runs, newest first (or best first with --sort METRIC)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._output import Output
from ftkit.cli._runs_common import (
    ago,
    fmt,
    json_option,
    open_or_none,
    registry_option,
    short_model,
    status_text,
    table,
)

_PREFERRED = ("eval.loss", "eval.accuracy", "eval.perplexity", "train.loss", "train.loss_last")


def metric_columns(runs: list[dict], sort: str | None, limit: int = 3) -> list[str]:
    """Which metrics to show as columns: the sort metric, then the usual headline metrics present in `runs`."""
    present = set()
    for run in runs:
        present.update(run.get("metrics") or {})
    columns = [sort] if sort else []
    for key in _PREFERRED:
        if key in present and key not in columns:
            columns.append(key)
    return columns[:limit]


def runs_command(
    status: str | None = typer.Option(
        None, "--status", help="Only runs with this status (succeeded, failed, interrupted)."
    ),
    method: str | None = typer.Option(None, "--method", help="Only runs of this method."),
    model: str | None = typer.Option(None, "--model", help="Only runs whose base model contains this text."),
    tag: str | None = typer.Option(None, "--tag", help="Only the run with this tag."),
    sort: str | None = typer.Option(None, "--sort", help="Sort by a metric, best first (e.g. eval.loss)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Include failed and interrupted runs."),
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Show at most this many runs (0: all)."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """List recorded runs, newest first; failed and interrupted runs are hidden unless --all."""
    out = Output(json_mode)
    reg = open_or_none(registry)
    if reg is None:
        out.note("no runs yet: `ftkit run recipe.yaml` records one")
        out.emit({"registry": str(registry) if registry else None, "total": 0, "shown": 0, "runs": []})
        return
    with reg:
        matching = reg.list_runs(
            status=status, method=method, model=model, tag=tag, include_all=all_, sort=sort, limit=None
        )
        shown = matching[:limit] if limit else matching
        hidden = 0
        if not (all_ or status):
            everything = reg.list_runs(method=method, model=model, tag=tag, include_all=True)
            hidden = len(everything) - len(matching)
    out.emit({"registry": str(reg.root), "total": len(matching), "shown": len(shown), "runs": shown})
    if json_mode:  # the document on stdout is the listing; a table of it on stderr would only cost time
        out.note(f"{len(shown)} of {len(matching)} run(s)")
        return
    if not shown:
        out.note(
            "no runs match"
            + (f" ({hidden} failed or interrupted hidden; --all shows them)" if hidden else "")
        )
        return
    metrics = metric_columns(shown, sort)
    rows = []
    for run in shown:
        values = run.get("metrics") or {}
        rows.append(
            [
                run["id"],
                run.get("name") or "",
                status_text(run.get("status")),
                run.get("method") or "—",
                short_model(run.get("model")),
                *[fmt(values.get(key)) for key in metrics],
                ", ".join(run.get("tags") or []),
                ago(run.get("ended_at") or run.get("committed_at")),
            ]
        )
    columns = ["id", "name", "status", "method", "model", *metrics, "tags", "when"]
    out.print(table(None, columns, rows, keep=(0, 1, 2)))
    notes = []
    if len(shown) < len(matching):
        notes.append(f"showing {len(shown)} of {len(matching)}; --limit 0 shows all")
    if hidden:
        notes.append(f"{hidden} failed or interrupted run(s) hidden; --all shows them")
    for note in notes:
        out.note(f"[dim]{escape(note)}[/dim]")


def register(app: typer.Typer) -> None:
    """Add `ftkit runs`."""
    app.command("runs")(runs_command)
