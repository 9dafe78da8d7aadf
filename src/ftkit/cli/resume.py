"""`ftkit resume RUN`: continue an interrupted, failed or lost run from its last complete checkpoint, under the same
run id, in the same output folder, with exactly the settings that wrote the checkpoint.

The run's recorded resolved recipe (every `auto` already decided) is what resumes: re-deciding an `auto` value on
resume (a measured batch size, a time budget's step count) could change what is trained. `--set` may change only
what does not count in the config hash (training.save_every, keep_checkpoints); anything else is refused (exit 2)
with the changed keys and the `ftkit rerun RUN --from-checkpoint STEP --set ...` command that forks instead.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing
from ftkit.errors import RecipeError, UsageError

_RESUMABLE = ("interrupted", "failed", "lost")


def resume_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Change a setting that does not alter training (training.save_every, training.keep_checkpoints).",
    ),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Continue an interrupted, failed or lost run from its last complete checkpoint, under the same run id."""
    code = resume_and_record(run, list(set_), json_mode=json_mode, registry_path=registry)
    if code:
        raise typer.Exit(code)


def resume_and_record(run: str, overrides: list[str], *, json_mode: bool, registry_path: Path | None) -> int:
    """Resume `run` and record it (the same run, `running` again, then final); returns the exit code."""
    from ftkit import yamlio
    from ftkit.recipe.load import load_recipe
    from ftkit.train.checkpoints import describe_contents, last_checkpoint

    output = Output(json_mode)
    reg = open_existing(registry_path)
    run_id = reg.resolve(run)
    recorded = reg.load_run(run_id)
    info = recorded["run"]
    flag = f" --registry {shlex.quote(str(registry_path))}" if registry_path is not None else ""
    status = info.get("status")
    if status not in _RESUMABLE:
        raise UsageError(
            f"run {run_id} is {status}; only an interrupted, failed or lost run can be resumed",
            hint=f"to train on from one of its checkpoints with other settings: `ftkit rerun {run_id} "
            f"--from-checkpoint last --set KEY=VALUE{flag}`",
        )
    output_dir = info.get("output_dir")
    checkpoint = last_checkpoint(output_dir) if output_dir else None
    if checkpoint is None:
        found = describe_contents(output_dir) if output_dir else "the run recorded no output folder"
        raise UsageError(
            f"run {run_id} has no complete checkpoint to resume from: {found}",
            hint="a run is resumable when its recipe sets training.save_every; "
            f"`ftkit rerun {run_id}{flag}` trains it again from the start",
        )
    resolved = recorded.get("resolved") or {}
    if not resolved:
        raise UsageError(
            f"run {run_id} has no resolved recipe recorded", hint=f"`ftkit rerun {run_id}{flag}`"
        )
    folder = Path.cwd() if os.access(Path.cwd(), os.W_OK) else Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix=f".ftkit-resume-{run_id}-", suffix=".yaml", dir=folder)
    recipe_path = Path(name)
    try:  # kept until the run ends: the processes of a multi-process run each read it again
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(yamlio.dump(resolved, header=f"resume of {run_id}"))
        loaded = load_recipe(recipe_path, overrides)
        _refuse_changed_settings(run_id, checkpoint.step, resolved, loaded, overrides, flag)
        return _resume(output, reg, recorded, loaded, checkpoint, registry_path)
    finally:
        recipe_path.unlink(missing_ok=True)


def _refuse_changed_settings(
    run_id: str, step: int, resolved: dict, loaded: Any, overrides: list[str], flag: str
) -> None:
    """RecipeError (exit 2) before any model loads when a `--set` changes a setting the config hash covers."""
    from ftkit.recipe.load import split_override
    from ftkit.train.resume import changed_keys

    given = {".".join(split_override(item)[0]) for item in overrides}
    changes = [
        change
        for change in changed_keys(resolved, loaded.recipe.model_dump(mode="json"))
        if any(change[0] == key or change[0].startswith(f"{key}.") for key in given)
    ]
    if changes:
        listed = "; ".join(f"{key}: {old!r} → {new!r}" for key, old, new in changes)
        sets = " ".join(f"--set {shlex.quote(item)}" for item in overrides)
        raise RecipeError(
            f"run {run_id} cannot resume with changed settings ({listed}): a resumed run trains exactly as it began",
            hint=f"fork it instead, a new run starting from the step-{step} checkpoint's weights: "
            f"`ftkit rerun {run_id} --from-checkpoint {step} {sets}{flag}`",
        )


def _resume(
    output: Output, reg: Any, recorded: dict, loaded: Any, checkpoint: Any, registry_path: Path | None
) -> int:
    """Continue the run in one process or, for a recipe with several, through the launcher (every rank from the
    same checkpoint), with `ftkit run`'s lifecycle (cli/_run_life.py): SIGTERM taken as Ctrl-C from the start;
    `running` again with a heartbeat once the settings match; checkpoints recorded; the final commit shielded."""
    from ftkit.cli._progress import TerminalReporter
    from ftkit.cli._run_life import RunLife
    from ftkit.cli._run_summary import show_summary
    from ftkit.cli.review import review_of_record, show_review_summary
    from ftkit.cli.run import _EXIT_FOR_STATUS, _commit_or_keep
    from ftkit.recipe.distributed_checks import needs_launch
    from ftkit.registry.environment import collect_environment
    from ftkit.train.resume import ResumeFrom
    from ftkit.train.runner import execute_run

    info = recorded["run"]
    run_id = info["id"]
    output.note(
        f"[bold]resuming run {run_id}[/bold] ({escape(str(info.get('name')))}) from step {checkpoint.step} "
        f"({escape(str(checkpoint.path))})"
    )
    life = RunLife(reg, output, _record_of(recorded, info))
    start = ResumeFrom(
        run_id,
        checkpoint,
        Path(info["output_dir"]),
        recorded["resolved"],
        str(info.get("config_hash")),
        list(recorded.get("history") or []),
        registry_flag=f" --registry {shlex.quote(str(registry_path))}" if registry_path is not None else "",
        confirmed=life.resumed,  # `running` again once the settings are known to match
    )
    if needs_launch(loaded.recipe):  # the run trained in several processes: so does its continuation
        from ftkit.train.launch import launch_run as execute_run
    life.take_sigterm()
    try:
        result = execute_run(
            loaded,
            run_id,
            info.get("name") or run_id,
            TerminalReporter(output),
            start=start,
            on_checkpoint=life.checkpoint,
        )
    except BaseException as error:  # bad input found late, or a second Ctrl-C: recorded once it was resumed
        life.abandon(error)
        raise
    life.close()
    if not life.started:  # stopped before its settings were checked: the registry still has it as it was
        output.warn(f"run {run_id} was not resumed ({result.error}); the registry is unchanged")
        return int(_EXIT_FOR_STATUS[result.status])
    resumed = {
        "time": result.started_at,
        "kind": "resume",
        "message": f"resumed from step {checkpoint.step} ({checkpoint.path}); it was {info.get('status')}",
        "step": checkpoint.step,
    }
    record = life.record
    record.status = result.status
    record.config_hash = result.config_hash
    record.ended_at = result.ended_at
    record.resolved = result.resolved
    record.metrics = result.metrics
    record.history = result.history
    record.events = [*record.events, resumed, *result.events]
    record.env = collect_environment(loaded.recipe.training.seed, result.hardware, loaded.base_dir)
    record.data = result.data_files
    record.output_dir = result.output_dir or record.output_dir  # its checkpoints are there in any case
    record.error = result.error
    record.samples = [*result.samples, *result.prompts]
    with life.shield() as signalled:  # the commit completes or the pending record is written, never neither
        record.review = review_of_record(record, output.warn)
        _commit_or_keep(reg, record, lambda: show_summary(output, loaded, result))
    if signalled:
        output.warn(f"run {run_id} was recorded before the interrupt took effect")
    show_summary(output, loaded, result)
    show_review_summary(output, record.review, registry_path)
    output.emit(
        {
            "run_id": run_id,
            "status": result.status,
            "resumed_from": checkpoint.to_dict(),
            "output_dir": result.output_dir,
            "metrics": result.metrics,
            "error": result.error,
        }
    )
    return int(_EXIT_FOR_STATUS[result.status])


def _record_of(recorded: dict, info: dict) -> Any:
    """The resumed run's record as the registry holds it (what `abandon` commits when the resumed session ends
    before its final record: the history and events so far are kept)."""
    from ftkit.registry.store import RunRecord

    return RunRecord(
        run_id=info["id"],
        name=info.get("name") or "",
        status="running",
        method=info.get("method"),
        model=info.get("model"),
        task=info.get("task"),
        config_hash=info.get("config_hash"),
        parent=info.get("parent"),
        started_at=info.get("started_at"),
        recipe_text=recorded.get("recipe") or "",
        overrides=list(info.get("overrides") or []),
        resolved=recorded.get("resolved") or {},
        metrics=dict(recorded.get("metrics") or {}),
        history=list(recorded.get("history") or []),
        events=list(recorded.get("events") or []),
        env=dict(recorded.get("env") or {}),
        data=dict(recorded.get("data") or {}),
        output_dir=info.get("output_dir"),
        auto=info.get("auto") or {},
        start_checkpoint=info.get("start_checkpoint"),
    )


def fork_start(registry_path: Path | None, run_id: str, which: str) -> Any:
    """The checkpoint a fork of `run_id` starts from (`ftkit rerun --from-checkpoint STEP|last`), as a
    train.resume.ForkFrom; UsageError (exit 2) naming the checkpoints there are when it is not there."""
    from ftkit.train.checkpoints import complete_checkpoints, describe_contents
    from ftkit.train.resume import ForkFrom

    reg = open_existing(registry_path)
    with reg:
        output_dir = reg.load_run(run_id)["run"].get("output_dir")
    found = complete_checkpoints(output_dir) if output_dir else []
    if which != "last" and not which.isdigit():
        raise UsageError(
            f"--from-checkpoint {which!r}: expected a step number or `last`",
            hint=f"e.g. --from-checkpoint last; run {run_id} has checkpoints at steps "
            f"{', '.join(str(c.step) for c in found) or '(none)'}",
        )
    chosen = found[-1:] if which == "last" else [c for c in found if c.step == int(which)]
    if not chosen:
        where = describe_contents(output_dir) if output_dir else "the run recorded no output folder"
        steps = ", ".join(str(c.step) for c in found)
        raise UsageError(
            f"run {run_id} has no complete checkpoint"
            + (f" at step {which}" if which != "last" else "")
            + (f" (it has steps {steps})" if steps else f": {where}"),
            hint="pick one of its steps, or rerun without --from-checkpoint to train from the base model",
        )
    return ForkFrom(run_id, chosen[0])


def register(app: typer.Typer) -> None:
    """Add `ftkit resume`."""
    app.command("resume")(resume_command)
