"""`ftkit plan RECIPE` / `ftkit plan DATA --model M`: memory and time per candidate method before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import json_option
from ftkit.cli._output import Output
from ftkit.errors import DataError, ModelError, UsageError


def plan_command(
    source: Path = typer.Argument(..., help="A recipe (.yaml/.yml), or a data file with --model."),
    model: str | None = typer.Option(
        None, "--model", help="Model (folder, hub id or .gguf) for a data file."
    ),
    method: str = typer.Option(
        "auto", "--method", help="Method to plan for (a data file); auto lets the plan choose."
    ),
    task: str = typer.Option(
        "causal-lm", "--task", help="causal-lm, classification or preference (a data file)."
    ),
    max_seq_len: int | None = typer.Option(
        None, "--max-seq-len", min=8, help="Token length (default: auto)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Micro-batch (default: auto)."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key, e.g. training.batch_size=4."),
    memory_limit: str | None = typer.Option(
        None, "--memory-limit", help="Plan against this much free memory instead of the machine's (e.g. 6GB)."
    ),
    candidates: str | None = typer.Option(
        None, "--candidates", help="Methods to compare, comma-separated (default: lora,qlora,full)."
    ),
    probe_steps: int = typer.Option(
        3, "--probe-steps", min=0, help="Optimizer steps per probe (0: no probe)."
    ),
    json_mode: bool = json_option(),
) -> None:
    """Estimate memory and time per candidate method before training; exit 2 with cheaper alternatives."""
    from ftkit.plan.build import build_plan, refuse_unfit
    from ftkit.plan.estimate import parse_size

    output = Output(json_mode)
    limit = None
    if memory_limit is not None:
        try:
            limit = parse_size(memory_limit)
        except ValueError as error:
            raise UsageError(f"--memory-limit: {error}", hint="e.g. --memory-limit 6GB") from None
    loaded = _loaded(source, model, method, task, max_seq_len, batch_size, set_)
    plan = build_plan(
        loaded,
        memory_limit=limit,
        probe_steps=probe_steps,
        candidates=[name.strip() for name in candidates.split(",") if name.strip()] if candidates else None,
        progress=lambda line: output.stderr.print(f"… {line}", markup=False),
        refuse=False,
    )
    if not json_mode:
        show_plan(output, plan)
    refuse_unfit(plan)  # exit 2 naming the cheaper alternatives; the plan above says why
    output.emit(plan.to_dict())


def _loaded(
    source: Path,
    model: str | None,
    method: str,
    task: str,
    max_seq_len: int | None,
    batch_size: int | None,
    overrides: list[str],
) -> Any:
    """A LoadedRecipe: the recipe file itself, or a recipe made from a data file and flags (validated alike)."""
    from ftkit.recipe.load import LoadedRecipe, load_recipe

    if source.suffix in (".yaml", ".yml"):
        if model is not None:
            raise UsageError("--model is for a data file; a recipe names its model", hint="drop --model")
        extra = [f"training.max_seq_len={max_seq_len}"] if max_seq_len else []
        extra += [f"training.batch_size={batch_size}"] if batch_size else []
        return load_recipe(source, [*overrides, *extra])
    if not source.exists():
        raise DataError(f"data file not found: {source}", hint="check the path (`ls` shows the files)")
    if model is None:
        raise UsageError(
            f"{source} is data: name the model with --model", hint=f"ftkit plan {source} --model M"
        )
    candidate = Path(model).expanduser()
    if (model.startswith((".", "/", "~")) or model.endswith(".gguf")) and not candidate.exists():
        raise ModelError(f"--model: {candidate} does not exist", hint="check the model folder or .gguf path")
    from ftkit.methods.catalog import get_method
    from ftkit.recipe.schema import Recipe

    training: dict[str, Any] = {}
    if max_seq_len:
        training["max_seq_len"] = max_seq_len
    if batch_size:
        training["batch_size"] = batch_size
    recipe = Recipe.model_validate(
        {
            "model": str(candidate.resolve()) if candidate.exists() else model,
            "task": task,
            "data": {"train": str(source.resolve())},
            "method": {"name": "lora" if method == "auto" else method},
            "training": training,
        }
    )
    chosen = get_method(recipe.method.name)
    loaded = LoadedRecipe(recipe, chosen.parse_options({}), Path.cwd() / "plan.yaml", "", [])
    if method == "auto":
        loaded.recipe.method.name = "auto"
    return loaded


def show_plan(output: Output, plan: Any) -> None:
    """The plan for people: its facts, a table of candidates (memory, fit, time), notes, warnings, the pick."""
    from rich.markup import escape

    from ftkit.plan.estimate import human_bytes

    output.note(
        f"[bold]Plan[/bold] for {escape(plan.model)} ({plan.task}) on {plan.device}, {plan.precision}: "
        f"{plan.train_rows:,} train rows, {plan.tokens_per_epoch:,} tokens per epoch, micro-batch {plan.batch_size} × "
        f"grad_accum {plan.grad_accum} = effective batch {plan.batch_size * plan.grad_accum} → "
        f"{plan.steps_per_epoch:,} steps per epoch, {plan.planned_steps:,} planned"
        f"; max_seq_len {plan.max_seq_len}; free memory {human_bytes(plan.free_bytes)} ({plan.free_source})"
    )
    rows = []
    for c in plan.candidates:
        if c.error:
            rows.append([c.method, "—", "—", "—", "—", "—", "—", f"not possible: {c.error}"])
            continue
        m = c.memory
        breakdown = (
            f"weights {human_bytes(m.weights)} · grads {human_bytes(m.gradients)} · optimizer "
            f"{human_bytes(m.optimizer)} · activations {human_bytes(m.activations)} · runtime {human_bytes(m.runtime)}"
        )
        if m.reference:
            breakdown += f" · reference copy {human_bytes(m.reference)}"
        rows.append(
            [
                c.method,
                f"{c.batch_size} × {c.grad_accum}",
                human_bytes(m.total),
                human_bytes(c.predicted_bytes) + (" (probe)" if c.probe else ""),
                "yes" if c.fits else "no",
                f"{c.seconds_per_step:.3g} s" if c.seconds_per_step is not None else "not probed",
                _duration(c.run_seconds),
                breakdown,
            ]
        )
    output.table(
        "Candidates",
        ["method", "batch × accum", "estimate", "needs", "fits", "per step", "run", "estimate breakdown"],
        rows,
    )
    if plan.preference:
        p = plan.preference
        output.note(
            f"  preference: {p['objective']}"
            + (f" ({p['loss_type']} loss, reference: {p['reference']})" if p["objective"] == "dpo" else "")
            + ": chosen and rejected in one forward, so 2 sequences per pair (activations of 2 × the micro-batch)"
        )
    for c in plan.candidates:
        if c.reference:
            output.note(f"  {c.method}: {escape(c.reference)}")
        for note in c.notes:
            output.note(f"  {c.method}: {escape(note)}")
    for key, text in plan.auto.items():
        output.note(f"  auto {key}: {escape(text)}")
    for warning in plan.warnings:
        output.warn(warning)
    if plan.recommended:
        output.note(f"[green]✓[/green] recommended: [bold]{plan.recommended}[/bold] — {escape(plan.reason)}")
    else:
        output.note(f"[red]✗[/red] {escape(plan.reason)}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
