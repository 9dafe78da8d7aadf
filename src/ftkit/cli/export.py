"""`ftkit export RUN -o DIR [--merge | --adapter] [--dtype fp32|bf16|fp16] [--force]`: a run's model as a
standard transformers folder or a PEFT adapter folder, with a model card. Torch loads only in ftkit.export."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.errors import UsageError


def export_command(
    run: str = typer.Argument(
        ..., help="A registry run (id, prefix, name, tag, @latest) or a run output folder."
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder to write (new or empty; --force replaces)."
    ),
    merge: bool = typer.Option(
        False, "--merge", help="Fold the adapter into the base: a transformers folder."
    ),
    adapter: bool = typer.Option(False, "--adapter", help="Write the PEFT adapter folder."),
    dtype: str = typer.Option("fp32", "--dtype", help="Weights' dtype: fp32, bf16 or fp16."),
    force: bool = typer.Option(False, "--force", help="Replace a folder that exists and is not empty."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Export a run's model (merged, or its adapter) with a model card, loadable without ftkit."""
    from ftkit.export.export import DTYPES, check_destination, export_run

    out = Output(json_mode)
    if merge and adapter:
        raise UsageError("--merge and --adapter were both given", hint="pass one of them")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: unknown dtype", hint=f"use one of {', '.join(DTYPES)}")
    check_destination(output.expanduser().absolute(), force)  # before anything loads
    mode = "adapter" if adapter else "merge"
    source, record, evals = _locate(run, registry)
    result = export_run(Path(source.path), output, mode=mode, dtype=dtype, force=force, record=record,
                        evals=evals, run_id=source.run_id)  # fmt: skip
    result["export_id"] = _record(source.run_id, result, registry, out)
    out.emit(result)
    for note in source.notes:
        out.warn(note)
    out.note(f"exported {escape(source.label)} ({mode}, {dtype}) to {escape(result['output'])}: "
             f"{len(result['files'])} files, model card README.md")  # fmt: skip


def _locate(ref: str, registry_path: Path | None) -> tuple:
    """The run's output folder (rebuilt from the objects store when gone), its record and its evals."""
    from ftkit.cli._runs_common import open_or_none
    from ftkit.targets import locate_target

    registry = None if Path(ref).expanduser().exists() else open_or_none(registry_path)
    try:
        source = locate_target(ref, registry)
        if source.kind not in ("run", "run-output"):
            raise UsageError(
                f"{ref} is a {source.kind.replace('-', ' ')}, not an ftkit run",
                hint="`ftkit export` takes a registry run (`ftkit runs` lists them) or a run output folder",
            )
        if source.run_id is None or registry is None:
            return source, {}, []
        return source, registry.load_run(source.run_id), registry.evals(source.run_id)
    finally:
        if registry is not None:
            registry.close()


def _record(run_id: str | None, result: dict, registry_path: Path | None, out: Output) -> str | None:
    """Record the finished export in the registry (exports.py); a failure warns and never undoes the export."""
    from ftkit.cli._runs_common import open_or_none
    from ftkit.errors import FtkitError
    from ftkit.registry.exports import record_export

    if run_id is None:
        return None  # a run output folder outside any registry: nothing to record it in
    try:
        registry = open_or_none(registry_path)
        if registry is None:
            return None
        with registry:
            return record_export(registry, run_id, mode=result["mode"], dtype=result["dtype"],
                                 method=result["method"], path=result["output"], files=result["files"])  # fmt: skip
    except (FtkitError, OSError) as error:
        out.warn(
            f"the export itself is complete in {escape(result['output'])}, but recording it in the registry "
            f"failed: {escape(str(error))}"
        )
        return None


def register(app: typer.Typer) -> None:
    """Add `ftkit export` to the app."""
    app.command("export")(export_command)
