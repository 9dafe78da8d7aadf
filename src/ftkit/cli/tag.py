"""`ftkit tag RUN NAME` and `ftkit untag NAME`: movable names such as `production` or `baseline`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing


def tag_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    name: str = typer.Argument(..., help="Tag name, e.g. production or baseline (moved if it exists)."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Tag a run; an existing tag of that name moves to this run."""
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        result = reg.tag(run, name)
    out.emit(result)
    if result["previous"] == result["run"]:
        out.note(f"tag {escape(name)} already points at {escape(result['run'])}")
    elif result["previous"]:
        out.note(
            f"moved tag [cyan]{escape(name)}[/cyan]: {escape(result['previous'])} → {escape(result['run'])}"
        )
    else:
        out.note(f"tagged {escape(result['run'])} as [cyan]{escape(name)}[/cyan]")


def untag_command(
    name: str = typer.Argument(..., help="The tag to remove."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Remove a tag (the run itself stays)."""
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        result = reg.untag(name)
    out.emit(result)
    out.note(f"removed tag [cyan]{escape(name)}[/cyan] (was on {escape(result['run'])})")


def register(app: typer.Typer) -> None:
    """Add `ftkit tag` and `ftkit untag`."""
    app.command("tag")(tag_command)
    app.command("untag")(untag_command)
