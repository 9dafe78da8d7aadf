"""`ftkit run RECIPE`: validate, train, evaluate, save, and commit the run to the registry."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._pending import record_pending
from ftkit.cli._run_life import RunLife, saved_output
from ftkit.cli._run_summary import next_steps, show_next_steps, show_summary
from ftkit.cli.table_fit import Column
from ftkit.errors import ExitCode, RecipeError, RegistryError

if TYPE_CHECKING:  # imported lazily: pydantic and the methods cost every command start-up time
    from ftkit.recipe.load import LoadedRecipe

_EXIT_FOR_STATUS = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.RUN_FAILED,
    "interrupted": ExitCode.INTERRUPTED,
}


def run_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. training.learning_rate=1e-4."),
    json_mode: bool = json_option(),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate recipe and data and show the plan; no training."
    ),
    registry: Path | None = registry_option(),
    num_processes: int | None = typer.Option(
        None,
        "--num-processes",
        min=1,
        help="Train in N processes through Accelerate's launcher (sets distributed.num_processes; batch_size "
        "stays per process).",
    ),
    track: list[str] = typer.Option(
        [],
        "--track",
        help="Report to a tracker too: mlflow, tensorboard or wandb (repeatable; README: Tracking).",
    ),
) -> None:
    """Fine-tune a model from a recipe and record the run."""
    if num_processes is not None:
        set_ = [*set_, f"distributed.num_processes={num_processes}"]
    code = run_and_record(
        recipe, set_, json_mode=json_mode, dry_run=dry_run, parent=None, registry_path=registry, track=track
    )
    if code:
        raise typer.Exit(code)


def run_and_record(
    recipe_path: Path,
    overrides: list[str],
    *,
    json_mode: bool,
    dry_run: bool,
    parent: str | None,
    registry_path: Path | None,
    extra_json: dict[str, Any] | None = None,
    extra_steps: list[tuple[str, str]] | None = None,
    start: Any = None,
    track: list[str] | None = None,
) -> int:
    """Run a recipe file and commit the run to the registry (also used by `ftkit rerun`); print the summary.
    Returns the exit code. The run itself is `ftkit.train.runner.execute_run`. `ftkit tune` adds its own keys
    to the JSON document (`extra_json`) and next steps (`extra_steps`, where `{run}` becomes the run's id)."""
    from ftkit.recipe.load import load_recipe

    output = Output(json_mode)
    loaded = load_recipe(recipe_path, overrides)
    if track:  # `--track NAME`: the tracker's defaults as an override, recorded with the run like any --set
        from ftkit.recipe.tracking_config import track_overrides

        extra = track_overrides(loaded.recipe.tracking, _known_trackers(track))
        if extra:
            loaded = load_recipe(recipe_path, [*overrides, *extra])
    _refuse_output_in_registry(loaded, registry_path)
    loaded, model_run = _model_from_run(loaded, registry_path, output, dry_run)
    if dry_run:
        return _dry_run(loaded, output, extra_json or {})

    from ftkit.recipe.distributed_checks import needs_launch

    if loaded.recipe.distributed is not None and loaded.recipe.distributed.machine_rank > 0:
        from ftkit.cli._launch import run_other_machine  # machine 0's `ftkit run` records the run

        return run_other_machine(loaded, output)
    from ftkit.cli._progress import TerminalReporter
    from ftkit.cli.review import review_of_record, show_review_summary
    from ftkit.registry.environment import collect_environment
    from ftkit.registry.preflight import check_registry_ready
    from ftkit.registry.store import RunRecord, RunRegistry, default_registry_path
    from ftkit.train.runner import execute_run

    # Before training: a run that cannot be committed afterwards would be lost.
    check_registry_ready(
        registry_path if registry_path is not None else default_registry_path(), note=output.warn
    )
    registry = RunRegistry.open(registry_path)
    record_pending(registry)  # a run an earlier commit failed to record goes in first, in training order
    if model_run is not None and parent is None:  # a rerun keeps the run it re-ran as its parent
        parent = model_run.run_id
    run_id = registry.new_run_id()
    name = loaded.recipe.name or registry.new_run_name(run_id)
    output.note(
        f"[bold]run {run_id}[/bold] ({escape(name)}): {loaded.recipe.method.name} on {escape(loaded.recipe.model)}"
    )
    life = RunLife(registry, output, _running_record(loaded, run_id, name, parent, collect_environment))
    if model_run is not None:
        life.record.model, life.record.model_run = f"run:{model_run.run_id}", model_run.to_dict()
    hooks: dict[str, Any] = {"on_checkpoint": life.checkpoint, "record_facts": life.update}
    if start is not None and needs_launch(loaded.recipe):
        raise RecipeError(
            "--from-checkpoint starts a run in one process; this recipe trains in several (distributed)",
            hint="add --set distributed.num_processes=1 to fork from the checkpoint",
        )
    if start is not None:  # a fork (`ftkit rerun --from-checkpoint`): train.resume.ForkFrom
        hooks["start"] = start
        life.record.start_checkpoint = start.to_dict()
    if needs_launch(loaded.recipe):  # several processes: this process starts them and records the run with
        from ftkit.train.launch import launch_run as execute_run  # the same hooks, as rank 0 reports
    try:
        life.start()  # committed as `running` before the model loads (registry/lifecycle.py)
        result = execute_run(loaded, run_id, name, TerminalReporter(output), **hooks)
    except BaseException as error:  # bad input found late, or a Ctrl-C outside training: still recorded
        life.abandon(error)
        raise
    life.close()

    record = RunRecord(
        run_id=run_id,
        name=name,
        status=result.status,
        method=loaded.recipe.method.name,
        model=loaded.recipe.model,
        task=loaded.recipe.task,
        config_hash=result.config_hash,
        parent=parent,
        started_at=result.started_at,
        ended_at=result.ended_at,
        recipe_text=loaded.text,
        overrides=loaded.overrides,
        resolved=result.resolved,
        metrics=result.metrics,
        history=result.history,
        events=result.events,
        env=collect_environment(loaded.recipe.training.seed, result.hardware, loaded.base_dir),
        data=result.data_files,
        output_dir=result.output_dir,
        error=result.error,
        auto=result.auto,
        start_checkpoint=start.to_dict() if start is not None else None,
        tracking=result.tracking,
        samples=[*result.samples, *result.prompts],  # samples.jsonl: what the models answered
    )
    if model_run is not None:  # recorded as `run:<full id>`, so a rerun starts from the same run
        record.model, record.model_run = f"run:{model_run.run_id}", model_run.to_dict()
        if record.resolved:
            record.resolved = {**record.resolved, "model": record.model}
    if result.status == "interrupted" and saved_output(result.output_dir) is None:
        record.output_dir = None  # nothing was saved there (a Ctrl-C during the model load, a second Ctrl-C)
    # The review is stored with the run; the commit completes or the pending record is written, never neither.
    with life.shield() as signalled:
        record.review = review_of_record(record, output.warn)
        _commit_or_keep(registry, record, lambda: show_summary(output, loaded, result))
    if signalled:
        output.warn(f"run {run_id} was recorded before the interrupt took effect")

    show_summary(output, loaded, result)
    show_review_summary(output, record.review, registry_path)
    if result.status != "failed":
        everyone = registry.summaries()
        steps = next_steps(
            result.run_id, result.output_dir, loaded.recipe.task, everyone, registry_path, extra_steps or []
        )
        show_next_steps(output, steps)
    output.emit(
        {
            "run_id": run_id,
            "name": name,
            "status": result.status,
            "output_dir": result.output_dir,
            "metrics": result.metrics,
            "error": result.error,
            "review": record.review,
            "prompts": result.prompts,
            **(extra_json or {}),
        }
    )
    return int(_EXIT_FOR_STATUS[result.status])


def _model_from_run(
    loaded: LoadedRecipe, registry_path: Path | None, output: Output, dry_run: bool
) -> tuple[LoadedRecipe, Any]:
    """`model: run:<ref>` or a run output folder: the recipe loading that run's trained weights, and the run
    (ftkit.model_from_run); the recipe as it is, and None, for any other model. A dry run only checks the run.
    The registry must exist already: a new, empty one could not hold the run."""
    from ftkit.model_from_run import check_model_run, names_run, open_registry, start_from_run

    if not names_run(loaded.recipe.model, loaded.base_dir):
        return loaded, None
    registry = open_registry(loaded, registry_path)
    if dry_run:
        check_model_run(loaded, registry)
        return loaded, None
    started, found = start_from_run(loaded, registry)
    how = (
        "its model folder"
        if not found.to_dict()["merged"]
        else f"its {found.method} adapter merged into its base"
    )
    output.note(f"model: starting from run {found.run_id} ({escape(how)}, {escape(found.folder)})")
    return started, found


def _known_trackers(names: list[str]) -> list[str]:
    """`--track` values, checked: an unknown one is a RecipeError (exit 2) naming the known trackers."""
    from ftkit.recipe.tracking_config import TRACKERS
    from ftkit.suggest import did_you_mean

    for name in names:
        if name not in TRACKERS:
            close = did_you_mean(name, TRACKERS)
            raise RecipeError(
                f"--track {name}: unknown tracker" + (f"; did you mean `{close[0]}`?" if close else ""),
                hint=f"choose from {', '.join(TRACKERS)}",
            )
    return names


def _running_record(
    loaded: LoadedRecipe, run_id: str, name: str, parent: str | None, environment: Any
) -> Any:
    """The record committed before the model loads: what the run is, where it writes, and its environment."""
    from ftkit.registry.records import RunRecord, now_iso

    return RunRecord(
        run_id=run_id,
        name=name,
        status="running",
        method=loaded.recipe.method.name,
        model=loaded.recipe.model,
        task=loaded.recipe.task,
        parent=parent,
        started_at=now_iso(),
        recipe_text=loaded.text,
        overrides=loaded.overrides,
        env=environment(loaded.recipe.training.seed, None, loaded.base_dir),
        output_dir=str(loaded.resolve_path(loaded.recipe.output) / run_id),
    )


def _commit_or_keep(registry: Any, record: Any, summary: Callable[[], None]) -> None:
    """Commit a trained run. When that fails (a lock appeared, the disk filled or became read-only, git refused),
    keep its complete record pending (registry/pending.py) and raise RegistryError with the cause as git or the
    disk gave it, where the record is kept, and that the next command against the registry records it."""
    import git

    rows: list[dict] | None = None  # None: the output folder's files are not in the weights store yet
    try:
        output_dir = Path(record.output_dir) if record.output_dir else None
        rows = registry.store.put_tree(output_dir) if output_dir and output_dir.is_dir() else []
        registry.commit_run(record, artifacts=rows)
    except (RegistryError, OSError, git.GitError) as error:
        raise _kept_pending(registry, record, rows, error, summary) from error


def _kept_pending(
    registry: Any, record: Any, rows: list[dict] | None, failure: Exception, summary: Callable[[], None]
) -> RegistryError:
    from ftkit.registry import pending

    reason = failure.message if isinstance(failure, RegistryError) else f"{type(failure).__name__}: {failure}"
    problems = list(getattr(failure, "problems", []))
    if record.status == "failed" and record.error:
        problems.append(f"the run itself failed: {record.error}")
    else:
        summary()  # what was trained, since the registry cannot show it yet
    where = f"run {record.run_id} ({record.status}) was not recorded: {reason}"
    try:
        kept = pending.keep(registry.root, record, rows, reason)
    except RegistryError as lost:
        return RegistryError(
            f"{where}; its record could not be kept either",
            hint=f"{lost.hint}; the trained output is in {record.output_dir}",
            problems=problems + lost.problems,
        )
    fix = getattr(failure, "hint", None) or f"make {registry.root} writable (or free space on its disk)"
    return RegistryError(
        where,
        hint=f"{fix}. The run's complete record is kept in {kept}; the next ftkit command against this registry "
        f"records it, e.g. `ftkit runs --all --registry {shlex.quote(str(registry.root))}`",
        problems=problems,
    )


def _refuse_output_in_registry(loaded: LoadedRecipe, registry_path: Path | None) -> None:
    """RecipeError (exit 2) at the `output` key when it points into the registry's git directory or weights
    store: writing there corrupts the registry (refs, objects)."""
    from ftkit.recipe.load import line_map, split_override
    from ftkit.registry.paths import protected_area
    from ftkit.registry.store import default_registry_path

    root = registry_path if registry_path is not None else default_registry_path()
    area = protected_area(root, loaded.resolve_path(loaded.recipe.output))
    if area is None:
        return
    if any(split_override(item)[0] == ("output",) for item in loaded.overrides):
        where = "--set output"
    else:
        line = line_map(loaded.text).get(("output",))
        where = f"{loaded.path}:{line}" if line else str(loaded.path)
    raise RecipeError(
        f"{where}: output: {loaded.recipe.output!r} is inside the registry's {area.name} ({area})",
        hint="point `output` at a folder outside the registry, e.g. outputs/",
    )


def _dry_run(loaded: LoadedRecipe, output: Output, extra_json: dict[str, Any]) -> int:
    from ftkit.methods.catalog import get_method
    from ftkit.train.runner import load_recipe_data

    recipe = loaded.recipe
    method = get_method(recipe.method.name)
    method.check_requirements()
    data = load_recipe_data(loaded)
    plan = {
        "recipe": str(loaded.path),
        "model": recipe.model,
        "task": recipe.task,
        "method": method.name,
        "method_options": loaded.method_options.model_dump(mode="json"),
        "format": data.format,
        "format_reason": data.format_reason,
        "train_rows": len(data.train),
        "eval_rows": len(data.eval),
        "split": data.split,
        "data_warnings": len(data.warnings),
        "output": str(loaded.resolve_path(recipe.output)),
        "training": recipe.training.model_dump(mode="json"),
    }
    if recipe.distributed is not None:
        from ftkit.cli._launch import distributed_plan

        plan.update(distributed_plan(recipe))
    output.table(
        "Plan (dry run: nothing trained)",
        [Column(key=True), Column(min_width=16, cut="middle")],
        [[key, value] for key, value in plan.items() if key != "training"],
    )
    output.emit({"status": "dry-run", "plan": plan, **extra_json})
    return int(ExitCode.OK)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
