"""`ftkit run RECIPE`: validate, train, evaluate, save, and commit the run to the registry."""

from __future__ import annotations

import json
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
from ftkit.cli.formatting import fmt, fmt_delta
from ftkit.cli.table_fit import Cell, Column
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
) -> None:
    """Fine-tune a model from a recipe and record the run."""
    if num_processes is not None:
        set_ = [*set_, f"distributed.num_processes={num_processes}"]
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
    extra_json: dict[str, Any] | None = None,
    extra_steps: list[tuple[str, str]] | None = None,
    start: Any = None,
) -> int:
    """Run a recipe file and commit the run to the registry (also used by `ftkit rerun`); print the summary.
    Returns the exit code. The run itself is `ftkit.train.runner.execute_run`. `ftkit tune` adds its own keys
    to the JSON document (`extra_json`) and next steps (`extra_steps`, where `{run}` becomes the run's id)."""
    from ftkit.recipe.load import load_recipe

    output = Output(json_mode)
    loaded = load_recipe(recipe_path, overrides)
    _refuse_output_in_registry(loaded, registry_path)
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
    run_id = registry.new_run_id()
    name = loaded.recipe.name or registry.new_run_name(run_id)
    output.note(
        f"[bold]run {run_id}[/bold] ({escape(name)}): {loaded.recipe.method.name} on {escape(loaded.recipe.model)}"
    )
    life = RunLife(registry, output, _running_record(loaded, run_id, name, parent, collect_environment))
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
        samples=[*result.samples, *result.prompts],  # samples.jsonl: what the models answered
    )
    if result.status == "interrupted" and saved_output(result.output_dir) is None:
        record.output_dir = None  # nothing was saved there (a Ctrl-C during the model load, a second Ctrl-C)
    # The review is stored with the run; the commit completes or the pending record is written, never neither.
    with life.shield() as signalled:
        record.review = review_of_record(record, output.warn)
        _commit_or_keep(registry, record, lambda: _summary(output, loaded, result))
    if signalled:
        output.warn(f"run {run_id} was recorded before the interrupt took effect")

    _summary(output, loaded, result)
    show_review_summary(output, record.review, registry_path)
    if result.status != "failed":
        everyone = registry.summaries()
        steps = next_steps(
            result.run_id, result.output_dir, loaded.recipe.task, everyone, registry_path, extra_steps or []
        )
        _next_steps(output, steps)
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


def _summary(output: Output, loaded: LoadedRecipe, result: Any) -> None:
    metrics = result.metrics
    if result.status == "failed":
        output.error(
            f"run {result.run_id} failed: {result.error}",
            hint="the failed run is recorded; see `ftkit show @latest` (FTKIT_DEBUG=1 shows the traceback)",
        )
        return
    if result.status == "interrupted" and "train.steps" not in metrics:  # stopped before training finished
        output.note(
            f"[yellow]run {result.run_id} interrupted before training finished: "
            f"{saved_output(result.output_dir) or 'nothing was saved'}[/yellow]"
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
        rows.append([f"eval {name}", base, tuned, Cell(delta, fmt_delta(delta, None)[0] or "—")])
    if rows:
        output.table("Base vs tuned", [Column("metric", key=True), "base", "tuned", "Δ"], rows)
    for sample in result.samples[:3]:
        output.note(
            f"[dim]expected:[/dim] {escape(repr(sample['reference']))}\n[dim]base:[/dim]     "
            f"{escape(repr(sample.get('base', '—')))}\n[dim]tuned:[/dim]    {escape(repr(sample.get('tuned', '—')))}"
        )
    _fixed_prompts(output, result.prompts)
    facts = [
        [
            "train loss (first → last)",
            f"{fmt(metrics.get('train.loss_first'))} → {fmt(metrics.get('train.loss_last'))}",
        ],
        ["steps", metrics.get("train.steps")],
        *_processes(metrics),
        *_best_step(metrics),
        [
            "trainable params",
            f"{fmt(metrics.get('train.trainable_params'))} "
            f"({100 * (metrics.get('train.trainable_fraction') or 0):.2f}%)",
        ],
        ["tokens/s", _rounded(metrics.get("train.tokens_per_sec"), 1)],
        ["wall time", f"{fmt(_rounded(metrics.get('run.wall_time_s'), 1))} s"],
        ["peak memory", f"{fmt(_rounded(metrics.get('train.peak_memory_mb'), 0))} MB"],
        [
            "truncated / dropped rows",
            f"{metrics.get('data.truncated_rows', 0)} / {metrics.get('data.dropped_rows', 0)}",
        ],
        ["output", result.output_dir],
    ]
    output.table(
        f"Run {result.run_id} {result.status}", [Column(key=True), Column(min_width=16, cut="middle")], facts
    )
    if result.status == "interrupted":
        output.note(f"[yellow]interrupted: {saved_output(result.output_dir) or 'nothing was saved'}[/yellow]")


def _processes(metrics: dict) -> list[list[Any]]:
    """The multi-process fact row: how many processes trained, and the global batch they made together."""
    if "train.num_processes" not in metrics:
        return []
    return [
        ["processes (global batch)", f"{metrics['train.num_processes']} ({metrics['train.global_batch']})"]
    ]


def _best_step(metrics: dict) -> list[list[Any]]:
    """The `select_best` fact row: which step's weights were kept, and its score (`train.best_eval_<name>`)."""
    if "train.best_step" not in metrics:
        return []
    scores = [(key, value) for key, value in metrics.items() if key.startswith("train.best_eval_")]
    score = f" (eval.{scores[0][0].removeprefix('train.best_eval_')} {fmt(scores[0][1])})" if scores else ""
    return [["best step (select_best)", f"{metrics['train.best_step']}{score}"]]


def _fixed_prompts(output: Output, rows: list[dict]) -> None:
    """The fixed prompts (`evaluation.prompts`) with the base and the tuned answer side by side, one line each."""
    from ftkit.cli._answers import one_line
    from ftkit.registry.answers import prompt_label

    if not rows:
        return
    table = [
        [one_line(prompt_label(r["prompt"])), one_line(r.get("base")), one_line(r.get("tuned"))] for r in rows
    ]
    output.table("Fixed prompts", [Column("prompt", min_width=12), "base", "tuned"], table)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def next_steps(
    run_id: str,
    output_dir: str | None,
    task: str,
    runs: list[dict],
    registry_path: Path | None,
    extra: list[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """What to do after a run, as (what, command) pairs: where the model is, a command that tries it, the diff
    against the run before it (when there is one) and how to tag it. `runs` are the registry's summaries, newest
    first; commands name this run by its short id (or @latest) and carry --registry when it was given."""
    import os
    import shlex

    from ftkit.cli.formatting import unique_prefixes

    flag = ""
    if registry_path is not None and os.environ.get("FTKIT_REGISTRY") != str(registry_path):
        flag = f" --registry {shlex.quote(str(registry_path))}"
    ids = [run["id"] for run in runs]
    short = unique_prefixes(ids, (run.get("name") or "" for run in runs))
    me = short.get(run_id, run_id)
    steps = []
    if output_dir:
        steps.append(("model", str(output_dir)))
        if task == "classification":  # `ftkit chat` generates text; a classifier is tried from Python
            target = json.dumps(str(output_dir))  # a Python string literal (JSON's quoting is Python's)
            code = (
                f"from ftkit.inference import load_trained_model; t = load_trained_model({target}); "
                'x = t.tokenizer("Some text to classify", return_tensors="pt"); '
                "print(t.labels[t.model(**x).logits.argmax(-1).item()])"
            )
            steps.append(("try it", f"python -c {shlex.quote(code)}"))
        else:
            steps.append(("try it", f"ftkit chat {me}{flag}"))
    position = ids.index(run_id) if run_id in ids else None
    if position is not None and position + 1 < len(ids):
        if position == 0:
            steps.append(("compare", f"ftkit diff @latest~1 @latest{flag}"))
        else:  # runs recorded after this one (in parallel) moved @latest
            steps.append(("compare", f"ftkit diff {short[ids[position + 1]]} {me}{flag}"))
    steps.append(("tag it", f"ftkit tag {me} NAME{flag}"))
    steps += [(what, command.format(run=me) + flag) for what, command in extra]  # e.g. tune's checkout
    return steps


def _next_steps(output: Output, steps: list[tuple[str, str]]) -> None:
    """Whole commands, never cut: they are for copying."""
    output.note("[bold]Next[/bold]")
    width = max(len(what) for what, _ in steps)
    for what, command in steps:
        output.note(f"  {escape(what).ljust(width)}  {escape(command)}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
