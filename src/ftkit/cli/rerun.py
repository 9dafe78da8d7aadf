"""`ftkit rerun RUN [--set key=value ...]`: a new run from a recorded run's resolved recipe, its parent recorded.

The new run records its own `--set` overrides (not the parent's, which are already in the recipe it starts from),
so `ftkit checkout` of the new run gives back exactly what it trained.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing
from ftkit.errors import UsageError


def prepare_rerun(
    registry: Path | None, run: str, original: bool, folder: Path | None = None
) -> tuple[str, str]:
    """(run id, recipe text) for re-running `run`: its resolved recipe (fresh name), or its recipe as written
    with its overrides applied and relative paths rebased to a file in `folder` (default: here)."""
    from ftkit.cli.checkout import recipe_as_written

    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(run)
        loaded = reg.load_run(run_id)
    if original:
        text = recipe_as_written(loaded, folder or Path.cwd())[0] if loaded["recipe"].strip() else ""
    else:
        from ftkit import yamlio

        resolved = dict(loaded["resolved"])
        resolved.pop("name", None)  # the new run gets its own name
        text = (
            yamlio.dump(resolved, header=f"rerun of {run_id} ({loaded['run'].get('name')})")
            if resolved
            else ""
        )
    if not text.strip():
        raise UsageError(
            f"run {run_id} has no {'recipe' if original else 'resolved recipe'} to re-run",
            hint="try " + ("without --original" if original else "--original"),
        )
    return run_id, text


def rerun_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. training.learning_rate=1e-4."),
    original: bool = typer.Option(
        False,
        "--original",
        help="Start from the recipe as written, with the run's overrides (comments kept), not the resolved one.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show the plan; no training."),
    from_checkpoint: str | None = typer.Option(
        None,
        "--from-checkpoint",
        metavar="STEP|last",
        help="Fork: start from the weights of the run's checkpoint at STEP (or its last one); optimizer and "
        "schedule start afresh. Recorded as the new run's start_checkpoint.",
    ),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Run again from a recorded run's resolved recipe (with --set changes); the new run records it as parent."""
    from ftkit.cli.run import run_and_record

    out = Output(json_mode)
    # The recipe file lives here for the run, so relative paths given with --set are relative to this folder.
    folder = Path.cwd()
    if not os.access(folder, os.W_OK):
        folder = Path(tempfile.gettempdir())
        out.warn(f"this folder is not writable: relative paths given with --set are relative to {folder}")
    run_id, text = prepare_rerun(registry, run, original, folder)
    start = None
    if from_checkpoint is not None:
        from ftkit.cli.resume import fork_start

        start = fork_start(registry, run_id, from_checkpoint)
    fd, name = tempfile.mkstemp(prefix=f".ftkit-rerun-{run_id}-", suffix=".yaml", dir=folder)
    recipe_path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        out.note(f"re-running {escape(run_id)}" + (f" with {escape(', '.join(set_))}" if set_ else ""))
        code = run_and_record(
            recipe_path,
            list(set_),
            json_mode=json_mode,
            dry_run=dry_run,
            parent=run_id,
            registry_path=registry,
            start=start,
        )
    finally:
        recipe_path.unlink(missing_ok=True)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `ftkit rerun`."""
    app.command("rerun")(rerun_command)
