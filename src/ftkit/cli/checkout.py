"""`ftkit checkout RUN`: write a run's recipe back to a file, to edit and run again."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._output import Output
from ftkit.cli._runs_common import json_option, open_existing, registry_option
from ftkit.errors import UsageError


def checkout_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: <run-name>.yaml here; '-' prints it)."
    ),
    resolved: bool = typer.Option(
        False,
        "--resolved",
        help="Write the resolved recipe (every 'auto' filled in, absolute paths) instead.",
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite the file if it exists."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Write the recipe of a run (as given, or --resolved) so it can be edited and run again."""
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(run)
        loaded = reg.load_run(run_id)
    text = loaded["resolved_text"] if resolved else loaded["recipe"]
    if not text.strip():
        raise UsageError(
            f"run {run_id} has no {'resolved recipe' if resolved else 'recipe'} recorded",
            hint="try the other one (" + ("without --resolved" if resolved else "--resolved") + ")",
        )
    name = loaded["run"].get("name") or run_id
    if output is not None and str(output) == "-":
        out.emit({"run": run_id, "path": None, "resolved": resolved, "text": text})
        if not json_mode:
            out.print(text, markup=False, highlight=False, end="")
        return
    target = output or Path(f"{name}.yaml")
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists; nothing was written",
            hint="pass --force to overwrite it, or -o another.yaml",
        )
    if target.is_dir():
        raise UsageError(f"{target} is a folder", hint="pass -o FILE.yaml")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.emit({"run": run_id, "path": str(target), "resolved": resolved})
    out.note(
        f"wrote the {'resolved ' if resolved else ''}recipe of {escape(run_id)} ({escape(name)}) to "
        f"{escape(str(target))}; edit it, then `ftkit run {escape(str(target))}`"
    )


def register(app: typer.Typer) -> None:
    """Add `ftkit checkout`."""
    app.command("checkout")(checkout_command)
