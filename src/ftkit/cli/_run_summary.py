"""`ftkit run`'s (and `ftkit resume`'s) summary on the terminal: what the run trained and measured, and the next
commands (where the model is, how to try it, compare and tag it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ftkit.cli._output import Output
from ftkit.cli._run_life import saved_output
from ftkit.cli.formatting import fmt, fmt_delta
from ftkit.cli.table_fit import Cell, Column

if TYPE_CHECKING:
    from ftkit.recipe.load import LoadedRecipe


def show_summary(output: Output, loaded: LoadedRecipe, result: Any) -> None:
    """What a finished run trained and measured (base vs tuned, samples, fixed prompts, facts); a failed run's
    error; an interrupted run's saved state, in words that say only what is true."""
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


def show_next_steps(output: Output, steps: list[tuple[str, str]]) -> None:
    """Whole commands, never cut: they are for copying."""
    output.note("[bold]Next[/bold]")
    width = max(len(what) for what, _ in steps)
    for what, command in steps:
        output.note(f"  {escape(what).ljust(width)}  {escape(command)}")
