"""`ftkit tune DATA --model M`: fine-tune with no recipe. The front door to the same runner as `ftkit run`.

It checks the data with the `ftkit data check` checker (bad rows stop it, located, exit 2), decides the task and
format (tune/detect.py: a label column beside a text column means classification), generates a recipe with `auto`
values (tune/recipe.py), shows the plan, and hands the recipe to `run_and_record`, which trains, evaluates against
the base model, commits the run (the generated recipe is its recipe.yaml), and prints the review and next steps.
Every check that can fail on bad input runs before anything is written to the registry.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.errors import FtkitError, ModelError, UsageError


def tune_command(
    data: str = typer.Argument(
        ..., help="Training data (.jsonl .json .csv .tsv .parquet) or a datasets folder."
    ),
    model: str = typer.Option(..., "--model", help="Base model: a local folder, a .gguf file or a hub id."),
    eval_file: str | None = typer.Option(
        None, "--eval", help="Eval file; without it 10 % of the distinct rows are held out."
    ),
    method: str = typer.Option("auto", "--method", help="auto (lora) or a method name (`ftkit methods`)."),
    task: str = typer.Option(
        "auto",
        "--task",
        help="auto (from the data), causal-lm, classification or preference; overrides detection.",
    ),
    time_budget: str | None = typer.Option(
        None, "--time-budget", help="Cap training to fit this long (20m, 90s, 1h30m), from a measured probe."
    ),
    save_recipe: Path | None = typer.Option(
        None, "--save-recipe", help="Also write the generated recipe to this file (ftkit run trains it)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite the --save-recipe file if it exists."),
    name: str | None = typer.Option(None, "--name", help="Name of the run."),
    set_: list[str] = typer.Option([], "--set", help="Override a generated key, e.g. evaluation.generate=0."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the data and show the plan; no training."),
    registry: Path | None = registry_option(),
    json_mode: bool = json_option(),
) -> None:
    """Fine-tune with no recipe: detect the task, choose every setting by a stated rule, train, review."""
    code = tune(
        data,
        model,
        eval_file=eval_file,
        method=method,
        task=task,
        time_budget=time_budget,
        save_recipe=save_recipe,
        force=force,
        name=name,
        overrides=set_,
        dry_run=dry_run,
        registry=registry,
        json_mode=json_mode,
    )
    if code:
        raise typer.Exit(code)


def tune(
    data: str,
    model: str,
    *,
    eval_file: str | None = None,
    method: str = "auto",
    task: str = "auto",
    time_budget: str | None = None,
    save_recipe: Path | None = None,
    force: bool = False,
    name: str | None = None,
    overrides: list[str] | None = None,
    dry_run: bool = False,
    registry: Path | None = None,
    json_mode: bool = False,
) -> int:
    """Generate a recipe for `data` and `model` and run it with `run_and_record`; returns the exit code."""
    from ftkit import yamlio
    from ftkit.cli.run import run_and_record
    from ftkit.data.dataset import load_checked
    from ftkit.tune.detect import choose_task
    from ftkit.tune.recipe import build_recipe, recipe_header

    output = Output(json_mode)
    _check_model(model)
    if time_budget is not None:
        _check_budget(time_budget)
    if save_recipe is not None and save_recipe.exists() and not force:
        raise UsageError(
            f"--save-recipe {save_recipe}: the file exists",
            hint="pass --force to overwrite it, or name another",
        )
    chosen_method = _method(method)
    source: str | Path = Path(data) if Path(data).exists() else data
    choice = choose_task(source, task)
    if eval_file is not None:
        load_checked(
            Path(eval_file) if Path(eval_file).exists() else eval_file, choice.format, choice.columns
        )
    _show_choice(output, data, choice)

    recipe = build_recipe(
        data=data,
        model=model,
        choice=choice,
        method=chosen_method,
        eval_file=eval_file,
        name=name,
        time_budget=time_budget,
    )
    header = recipe_header(sys.argv[2:] if len(sys.argv) > 2 else [data], choice)
    extra: dict[str, Any] = {
        "tune": {
            "task": choice.task,
            "format": choice.format,
            "columns": choice.columns,
            "reason": choice.reason,
            "unused_columns": choice.report.unused_columns,
            "recipe": recipe,
            "recipe_file": str(save_recipe) if save_recipe else None,
        }
    }
    with tempfile.TemporaryDirectory(prefix="ftkit-tune-") as scratch:
        path = Path(scratch) / "recipe.yaml"
        path.write_text(yamlio.dump(recipe, header=header), encoding="utf-8")
        plan = _plan(output, path, list(overrides or []), method, json_mode)
        extra["tune"]["plan"] = plan.to_dict()
        if method == "auto" and plan.recommended != chosen_method:
            output.note(f"method {plan.recommended}: the plan's recommendation (instead of {chosen_method})")
            recipe = build_recipe(
                data=data,
                model=model,
                choice=choice,
                method=plan.recommended,
                eval_file=eval_file,
                name=name,
                time_budget=time_budget,
            )
            extra["tune"]["recipe"] = recipe
        if save_recipe is not None:
            path = save_recipe
            path.parent.mkdir(parents=True, exist_ok=True)
            output.note(f"recipe written to {escape(str(path))} (`ftkit run {escape(str(path))}`)")
        path.write_text(yamlio.dump(recipe, header=header), encoding="utf-8")
        steps = [] if save_recipe is not None else [("recipe", "ftkit checkout {run} -o recipe.yaml")]
        try:
            return run_and_record(
                path,
                list(overrides or []),
                json_mode=json_mode,
                dry_run=dry_run,
                parent=None,
                registry_path=registry,
                extra_json=extra,
                extra_steps=steps,
            )
        except FtkitError as error:
            if time_budget is not None and "time_budget" in error.message:
                error.message = f"--time-budget {time_budget}: {error.message}"
            raise


def _check_model(model: str) -> None:
    """ModelError (exit 2) at --model when it names a local path that does not hold a model."""
    from ftkit.hub_ids import is_hub_model_id

    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or model.endswith(".gguf") or path.exists()
    if not looks_local:
        if is_hub_model_id(model):
            return
        raise ModelError(
            f"--model {model}: not a local folder, a .gguf file or a hub id (owner/name)",
            hint="give the folder holding config.json and the weights, a .gguf file, or a hub id",
        )
    if model.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"--model {model}: GGUF file not found ({path.resolve()})")
    elif not path.is_dir():
        raise ModelError(
            f"--model {model}: no such folder ({path.resolve()})",
            hint="give the folder holding config.json and the weights, a .gguf file, or a hub id",
        )
    elif not (path / "config.json").is_file():
        raise ModelError(f"--model {model}: {path.resolve()} has no config.json, so it is not a model folder")


def _check_budget(value: str) -> None:
    from ftkit.recipe.auto_rules import parse_duration

    try:
        parse_duration(value)
    except ValueError as error:
        raise UsageError(f"--time-budget {value!r}: {error}", hint="e.g. --time-budget 20m") from None


def _method(method: str) -> str:
    """`auto` is lora (adapters train on CPUs and GPUs alike and fit where full fine-tuning does not)."""
    from ftkit.methods.catalog import get_method

    if method == "auto":
        return "lora"
    return get_method(method).name  # MethodError (exit 2) listing the methods for an unknown name


def _show_choice(output: Output, data: str, choice: Any) -> None:
    report = choice.report
    output.note(
        f"[bold]{escape(data)}[/bold]: {len(report.examples):,} rows, {choice.format} format → task "
        f"[bold]{choice.task}[/bold] ({escape(choice.reason)})"
    )
    for problem in report.warnings:
        if problem.code == "unused-column":
            output.warn(str(problem))
    others = [p for p in report.warnings if p.code != "unused-column"]
    if others:
        output.note(
            f"  data check: {len(others):,} warning{'s' if len(others) != 1 else ''}, first: "
            f"{escape(str(others[0]))} (`ftkit data check {escape(data)}` lists them all)"
        )


def _plan(output: Output, recipe_path: Path, overrides: list[str], method: str, json_mode: bool) -> Any:
    """The `ftkit plan` report for the generated recipe (memory and a measured probe per candidate method), shown
    before training. With --method auto the plan recommends the method among its candidates; a named method is
    the only candidate (`ftkit plan` compares it with others); a method that cannot fit, or no
    candidate fitting, is a UsageError (exit 2) naming the cheaper alternatives, before the registry is touched."""
    from ftkit.cli.plan import show_plan
    from ftkit.plan.build import build_plan, refuse_unfit
    from ftkit.recipe.load import load_recipe

    loaded = load_recipe(recipe_path, overrides)
    if method == "auto":
        loaded.recipe.method.name = "auto"  # the plan chooses among its candidates
    progress = lambda line: output.stderr.print(f"… {line}", markup=False)  # noqa: E731
    # A method the user named is the only one probed, unless it cannot fit: then the others are planned to name them
    plan = build_plan(
        loaded, candidates=None if method == "auto" else [method], progress=progress, refuse=False
    )
    named = plan.candidate(method) if method != "auto" else None
    if named is not None and not named.error and not named.fits:
        plan = build_plan(loaded, progress=progress, refuse=False)
    if not json_mode:
        show_plan(output, plan)
    refuse_unfit(plan)
    if plan.recommended is None:
        # With batch_size auto the plan already sized each candidate at the micro-batch the run would use
        # (down to 1, grad_accum keeping the effective batch): nothing fitting means not even one row per step.
        raise UsageError(
            f"nothing fits: {plan.reason}",
            hint="pick a smaller model, or a shorter length with --set training.max_seq_len=256"
            + ("" if loaded.recipe.training.batch_size == "auto" else " and --set training.batch_size=1"),
        )
    return plan


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)
