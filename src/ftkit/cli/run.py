"""`ftkit run RECIPE`: validate, train, evaluate, save, and commit the run to the registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ftkit.cli._output import Output
from ftkit.errors import ExitCode

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
    json_mode: bool = typer.Option(
        False, "--json", help="Print one JSON object on stdout; progress to stderr."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate recipe and data and show the plan; no training."
    ),
    registry: Path | None = typer.Option(
        None, "--registry", envvar="FTKIT_REGISTRY", help="Run registry folder."
    ),
) -> None:
    """Fine-tune a model from a recipe and record the run."""
    code = run_and_record(
        recipe, set_, json_mode=json_mode, dry_run=dry_run, parent=None, registry_path=registry
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
) -> int:
    """Run a recipe file and commit the run to the registry (also used by `ftkit rerun`); print the summary.
    Returns the exit code. The run itself is `ftkit.train.runner.execute_run`."""
    from ftkit.recipe.load import load_recipe

    output = Output(json_mode)
    loaded = load_recipe(recipe_path, overrides)
    if dry_run:
        return _dry_run(loaded, output)

    from ftkit.cli._progress import TerminalReporter
    from ftkit.registry.environment import collect_environment
    from ftkit.registry.store import RunRecord, RunRegistry
    from ftkit.train.runner import execute_run

    registry = RunRegistry.open(registry_path)
    run_id = registry.new_run_id()
    name = loaded.recipe.name or registry.new_run_name(run_id)
    output.note(f"[bold]run {run_id}[/bold] ({name}): {loaded.recipe.method.name} on {loaded.recipe.model}")
    result = execute_run(loaded, run_id, name, TerminalReporter(output))

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
    )
    registry.commit_run(record)

    _summary(output, loaded, result)
    output.emit(
        {
            "run_id": run_id,
            "name": name,
            "status": result.status,
            "output_dir": result.output_dir,
            "metrics": result.metrics,
            "error": result.error,
        }
    )
    return int(_EXIT_FOR_STATUS[result.status])


def _dry_run(loaded: LoadedRecipe, output: Output) -> int:
    from ftkit.methods.registry import get_method
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
    output.table(
        "Plan (dry run: nothing trained)",
        ["", ""],
        [[key, value] for key, value in plan.items() if key != "training"],
    )
    output.emit({"status": "dry-run", "plan": plan})
    return int(ExitCode.OK)


def _format(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _summary(output: Output, loaded: LoadedRecipe, result: Any) -> None:
    metrics = result.metrics
    if result.status == "failed":
        output.error(
            f"run {result.run_id} failed: {result.error}",
            hint="the failed run is recorded; see `ftkit show @latest` (FTKIT_DEBUG=1 shows the traceback)",
        )
        return
    names = sorted(
        {key.removeprefix("eval.") for key in metrics if key.startswith("eval.")}
        | {key.removeprefix("base.eval.") for key in metrics if key.startswith("base.eval.")}
    )
    rows = []
    for name in names:
        base, tuned = metrics.get(f"base.eval.{name}"), metrics.get(f"eval.{name}")
        delta = tuned - base if isinstance(base, float) and isinstance(tuned, float) else None
        rows.append(
            [f"eval {name}", _format(base), _format(tuned), f"{delta:+.4f}" if delta is not None else "—"]
        )
    if rows:
        output.table("Base vs tuned", ["metric", "base", "tuned", "Δ"], rows)
    for sample in result.samples[:3]:
        output.note(
            f"[dim]expected:[/dim] {sample['reference']!r}\n[dim]base:[/dim]     "
            f"{sample.get('base', '—')!r}\n[dim]tuned:[/dim]    {sample.get('tuned', '—')!r}"
        )
    facts = [
        [
            "train loss (first → last)",
            f"{_format(metrics.get('train.loss_first'))} → {_format(metrics.get('train.loss_last'))}",
        ],
        ["steps", _format(metrics.get("train.steps"))],
        [
            "trainable params",
            f"{_format(metrics.get('train.trainable_params'))} "
            f"({100 * (metrics.get('train.trainable_fraction') or 0):.2f}%)",
        ],
        ["tokens/s", f"{metrics.get('train.tokens_per_sec') or 0:,.1f}"],
        ["wall time", f"{metrics.get('run.wall_time_s') or 0:,.1f} s"],
        ["peak memory", f"{metrics.get('train.peak_memory_mb') or 0:,.0f} MB"],
        [
            "truncated / dropped rows",
            f"{metrics.get('data.truncated_rows', 0)} / {metrics.get('data.dropped_rows', 0)}",
        ],
        ["output", result.output_dir or "—"],
    ]
    output.table(f"Run {result.run_id} {result.status}", ["", ""], facts)
    if result.status == "interrupted":
        output.note(f"[yellow]interrupted: what was trained is saved in {result.output_dir}[/yellow]")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
