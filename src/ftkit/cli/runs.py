"""`ftkit runs`: the table of recorded runs, newest first (or best first with --sort METRIC)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option, wide_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import STATUS_STYLE, lost_line, open_or_none, warn_damaged
from ftkit.cli.formatting import ago, unique_prefixes
from ftkit.cli.table_fit import Column

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
        None, "--status", help="Only runs with this status (running, succeeded, failed, interrupted, lost)."
    ),
    method: str | None = typer.Option(None, "--method", help="Only runs of this method."),
    model: str | None = typer.Option(None, "--model", help="Only runs whose base model contains this text."),
    tag: str | None = typer.Option(None, "--tag", help="Only the run with this tag."),
    sort: str | None = typer.Option(None, "--sort", help="Sort by a metric, best first (e.g. eval.loss)."),
    all_: bool = typer.Option(False, "--all", "-a", help="Include failed, interrupted and lost runs."),
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Show at most this many runs (0: all)."),
    wide: bool = wide_option(),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """List recorded runs, newest first; failed, interrupted and lost runs are hidden unless --all."""
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
        every_run = reg.summaries()
    warn_damaged(out, every_run, reg.root)
    out.emit({"registry": str(reg.root), "total": len(matching), "shown": len(shown), "runs": shown})
    if json_mode:  # the document on stdout is the listing; a table of it on stderr would only cost time
        out.note(f"{len(shown)} of {len(matching)} run(s)")
        return
    if not shown:
        out.note(
            "no runs match"
            + (f" ({hidden} failed, interrupted or lost hidden; --all shows them)" if hidden else "")
        )
        return
    metrics = metric_columns(shown, sort)
    short = unique_prefixes((r["id"] for r in every_run), (r.get("name") or "" for r in every_run))
    rows = [
        [
            run["id"],
            run.get("name"),
            run.get("status"),
            run.get("method"),
            run.get("model"),
            *[(run.get("metrics") or {}).get(key) for key in metrics],
            run.get("tags") or [],
            run.get("ended_at") or run.get("committed_at"),
        ]
        for run in shown
    ]
    out.table(None, run_columns(metrics, short), rows, wide=wide)
    if len(shown) < len(matching):
        out.hint(f"showing {len(shown)} of {len(matching)}; --limit 0 shows all")
    if hidden:
        out.hint(f"{hidden} failed, interrupted or lost run(s) hidden; --all shows them")
    for run in shown:
        if run.get("status") == "lost":
            out.hint(escape(lost_line(run)))


def run_columns(metrics: list[str], short: dict[str, str]) -> list[Column]:
    """The columns of `ftkit runs`, most useful first; in a narrow terminal the ones with the highest `drop` go."""
    return [
        Column("id", show=lambda run_id: short.get(run_id, run_id), key=True),
        Column("name", key=True),
        Column("status", style=lambda status: STATUS_STYLE.get(status or ""), key=True),
        Column("method", drop=2),
        Column("model", min_width=14, cut="start"),
        *[Column(key, min_width=len(key), drop=1 if i == 0 else 5 + i) for i, key in enumerate(metrics)],
        Column("tags", show=", ".join, drop=3),
        Column("when", show=ago, min_width=10, drop=4),  # never cut: hidden instead
    ]


def register(app: typer.Typer) -> None:
    """Add `ftkit runs`."""
    app.command("runs")(runs_command)
