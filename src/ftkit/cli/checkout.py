"""`ftkit checkout RUN`: write a run's recipe back to a file, to edit and run again."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing
from ftkit.errors import UsageError
from ftkit.registry.paths import protected_area, safe_file_stem


def recipe_as_written(loaded: dict, folder: Path) -> tuple[str, list[str]]:
    """A recorded run's recipe as its author wrote it (comments and layout kept) with the run's `--set`
    overrides written in, and relative paths rebased to a file in `folder`. Returns the text and notes."""
    from ftkit.recipe.edit import apply_overrides, rebase_paths

    text = apply_overrides(loaded["recipe"], list(loaded["run"].get("overrides") or []))
    return rebase_paths(text, loaded.get("resolved") or {}, folder)


def checkout_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="File to write (default: <run-name>.yaml in this folder, made a safe file name; '-' prints it).",
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
    """Write the recipe of a run (as written, with its --set overrides; or --resolved) to edit and run again."""
    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(run)
        loaded = reg.load_run(run_id)
    text = loaded["resolved_text"] if resolved else loaded["recipe"]
    overrides = [] if resolved else list(loaded["run"].get("overrides") or [])
    if not text.strip():
        raise UsageError(
            f"run {run_id} has no {'resolved recipe' if resolved else 'recipe'} recorded",
            hint="try the other one (" + ("without --resolved" if resolved else "--resolved") + ")",
        )
    name = loaded["run"].get("name") or run_id
    to_stdout = output is not None and str(output) == "-"
    target = Path.cwd() / "-" if to_stdout else (output or Path(f"{safe_file_stem(name, run_id)}.yaml"))
    area = None if to_stdout else protected_area(reg.root, target)
    if area is not None:
        raise UsageError(
            f"{'-o ' if output is not None else ''}{target}: that is inside the registry's {area.name} ({area}); nothing was written",
            hint="write the recipe outside the registry, e.g. -o recipe.yaml",
        )
    notes: list[str] = []
    if not resolved:
        text, notes = recipe_as_written(loaded, target.absolute().parent)
    facts = {"run": run_id, "resolved": resolved, "overrides": overrides, "rebased": notes}
    if to_stdout:
        out.emit({**facts, "path": None, "text": text})
        if not json_mode:
            out.print(text, markup=False, highlight=False, end="")
        for note in notes:  # stdout holds the recipe: say on stderr that paths are for a file in this folder
            out.warn(f"rebased for a file in the current folder: {note}")
        return
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists; nothing was written",
            hint="pass --force to overwrite it, or -o another.yaml",
        )
    if target.is_dir():
        raise UsageError(f"{target} is a folder", hint="pass -o FILE.yaml")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.emit({**facts, "path": str(target)})
    if overrides:
        out.note(f"applied the run's overrides: {escape(' '.join(overrides))}")
    for note in notes:
        out.note(f"rebased {escape(note)}")
    out.note(
        f"wrote the {'resolved ' if resolved else ''}recipe of {escape(run_id)} ({escape(name)}) to "
        f"{escape(str(target))}; edit it, then `ftkit run {escape(str(target))}`"
    )


def register(app: typer.Typer) -> None:
    """Add `ftkit checkout`."""
    app.command("checkout")(checkout_command)
