"""Plan accuracy: what `ftkit plan` predicts for lora and full on SmolLM2-135M-Instruct against what `ftkit run`
then measures on the same recipe (same model, rows, batch, length, precision, steps).

Each repetition runs, each in its own child process: one `ftkit plan RECIPE --candidates A,B --json` (its probe
of each candidate is what a user sees), then `ftkit run` of method A, then of method B; A and B alternate between
repetitions (lora first, then full first), so that neither method always runs on a warmer machine or is always
probed second inside the plan's process.

- Memory: the plan's `predicted_bytes` (its probe's measured peak over the process's resident size before the
  model loaded, plus that resident size) against the peak resident set of the whole `ftkit run` process (wait4's
  ru_maxrss of that very child, taken by the harness, which imports no torch: a forked child's ru_maxrss starts
  from its parent's, so the parent must be small). Target: the ratio predicted / measured within 0.75–1.25.
- Time: the plan's `run_seconds` (probe seconds per step, scaled to the run's average tokens per step, × the
  planned steps) against the run's own `train.runtime_s` (the trainer's train loop, first step included; process
  start, model load, evaluation and saving are not training time). Target: ratio within 0.70–1.30.

The analytic estimate (what the plan falls back on where it cannot probe) is reported against the same
measurement, without a target. Each ratio pairs the plan and the run of one repetition (median, min, max).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import (
    REPO_ROOT,
    BenchResult,
    Row,
    Stat,
    check_target,
    child_env,
    load_average,
    ratio_stat,
    run_child,
    shell_join,
)
from benchmarks.sides import TrainSpec, write_recipe

NAME = "plan_accuracy"
METHODS = ("lora", "full")
MEMORY_TARGET = (0.75, 1.25)  # issue 12: predicted vs measured peak memory within 25 %
TIME_TARGET = (0.70, 1.30)  # issue 12: predicted vs measured time within 30 %
LEARNING_RATES = {"lora": 2e-4, "full": 2e-5}
MB = 2**20


def _recipes(ctx: Context) -> dict[str, Path]:
    size = ctx.preset.plan
    # One epoch of exactly `steps` batches: the run sees every row, the longest ones the plan probes included.
    split = data_split("chat", size.batch_size * size.steps, 4, ctx.workdir, seed=3)
    recipes = {}
    for method in METHODS:
        spec = TrainSpec(
            model=ctx.model_dir,
            split=split,
            method=method,
            batch_size=size.batch_size,
            steps=size.steps,
            max_seq_len=size.max_seq_len,
            learning_rate=LEARNING_RATES[method],
            precision=ctx.precision,
        )
        recipes[method] = write_recipe(
            spec, ctx.workdir / "recipes" / f"{NAME}-{method}.yaml", ctx.workdir / "outputs"
        )
    return recipes


def _plan(ctx: Context, recipe: Path, order: tuple[str, ...]) -> dict[str, Any]:
    """One `ftkit plan --json`: per method its predicted bytes, analytic total and predicted training seconds."""
    argv = [
        "plan",
        str(recipe),
        "--candidates",
        ",".join(order),
        "--probe-steps",
        str(ctx.preset.plan_probe_steps),
    ]
    child = run_child([sys.executable, "-m", "ftkit", *argv, "--json"], cwd=REPO_ROOT, env=child_env(),
                      timeout=ctx.preset.child_timeout_s)  # fmt: skip
    document = child.json() or {}
    record: dict[str, Any] = {
        "ok": child.ok,
        "wall_s": round(child.wall_s, 1),
        "command": "ftkit " + shell_join(argv),
    }
    if not child.ok or "candidates" not in document:
        record["error"] = (
            document.get("error") if isinstance(document.get("error"), dict) else None
        ) or child.tail()
        return record
    record.update(planned_steps=document["planned_steps"], precision=document["precision"])
    for candidate in document["candidates"]:
        probe = candidate.get("probe") or {}
        record[candidate["method"]] = {
            "predicted_bytes": candidate.get("predicted_bytes"),
            "analytic_bytes": (candidate.get("memory") or {}).get("total"),
            "run_seconds": candidate.get("run_seconds"),
            "seconds_per_step": candidate.get("seconds_per_step"),
            "probe_step_seconds": probe.get("step_seconds"),
            "probe_tokens_per_step": probe.get("tokens_per_step"),
            "probe_baseline_bytes": probe.get("baseline_bytes"),
            "probe_peak_bytes": probe.get("peak_memory_bytes"),
            "error": candidate.get("error"),
        }
    return record


def _run(ctx: Context, recipe: Path, tag: str) -> dict[str, Any]:
    """One `ftkit run --json` of the recipe: the child's peak RSS and the trainer's own train-loop time."""
    registry = ctx.workdir / "registry"
    command = [sys.executable, "-m", "ftkit", "run", str(recipe), "--json", "--registry", str(registry),
               "--set", f"output={ctx.workdir / 'outputs' / tag}"]  # fmt: skip
    child = run_child(command, cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s)
    document = child.json() or {}
    metrics = document.get("metrics") or {}
    ok = child.ok and document.get("status") == "succeeded"
    return {
        "ok": ok,
        "peak_rss_mb": child.max_rss_mb,
        "train_s": metrics.get("train.runtime_s"),
        "steps": metrics.get("train.steps"),
        "tokens": metrics.get("train.tokens"),
        "wall_s": round(child.wall_s, 1),
        "load_average": load_average(),
        "error": None if ok else (document.get("error") or child.tail()),
    }


def repetition_values(reps: list[dict[str, Any]], method: str) -> dict[str, list[float | None]]:
    """Per repetition, the paired predicted and measured figures of one method (None where either side failed)."""
    values: dict[str, list[float | None]] = {key: [] for key in (
        "predicted_mb", "analytic_mb", "measured_mb", "predicted_s", "measured_s")}  # fmt: skip
    for rep in reps:
        plan = (rep.get("plan") or {}).get(method) or {}
        run = (rep.get("runs") or {}).get(method) or {}
        run_ok = bool(run.get("ok"))
        values["predicted_mb"].append(plan["predicted_bytes"] / MB if plan.get("predicted_bytes") else None)
        values["analytic_mb"].append(plan["analytic_bytes"] / MB if plan.get("analytic_bytes") else None)
        values["measured_mb"].append(run.get("peak_rss_mb") if run_ok else None)
        values["predicted_s"].append(plan.get("run_seconds"))
        values["measured_s"].append(run.get("train_s") if run_ok else None)
    return values


def accuracy_rows(reps: list[dict[str, Any]], command: str, what: str) -> list[Row]:
    """The rows of the results file from the repetitions' records: figures per side and paired ratios with the
    issue's targets, judged on the median ratio (min and max say whether single repetitions strayed)."""
    rows = []
    for method in METHODS:
        v = repetition_values(reps, method)
        memory, analytic = (
            ratio_stat(v["predicted_mb"], v["measured_mb"]),
            ratio_stat(v["analytic_mb"], v["measured_mb"]),
        )
        time = ratio_stat(v["predicted_s"], v["measured_s"])
        rows += [
            Row(NAME, f"{method} peak memory predicted by ftkit plan (its probe)", "MB", Stat.of(v["predicted_mb"]), command),
            Row(NAME, f"{method} peak RSS measured: ftkit run ({what})", "MB", Stat.of(v["measured_mb"]), command),
            Row(NAME, f"{method} memory predicted / measured", "x", memory, command,
                target=f"{MEMORY_TARGET[0]:.2f}–{MEMORY_TARGET[1]:.2f}",
                status=check_target(memory.median, *MEMORY_TARGET), key=f"memory_{method}"),
            Row(NAME, f"{method} memory analytic estimate / measured (the fallback where no probe runs)", "x",
                analytic, command),
            Row(NAME, f"{method} training time predicted by ftkit plan", "s", Stat.of(v["predicted_s"]), command),
            Row(NAME, f"{method} training time measured: train.runtime_s of ftkit run", "s", Stat.of(v["measured_s"]), command),
            Row(NAME, f"{method} time predicted / measured", "x", time, command,
                target=f"{TIME_TARGET[0]:.2f}–{TIME_TARGET[1]:.2f}",
                status=check_target(time.median, *TIME_TARGET), key=f"time_{method}"),
        ]  # fmt: skip
    plan_walls = [(rep.get("plan") or {}).get("wall_s") for rep in reps]
    rows.append(
        Row(NAME, "ftkit plan wall time (both probes, start to end)", "s", Stat.of(plan_walls), command)
    )
    return rows


def run(ctx: Context) -> BenchResult:
    """Alternated repetitions of plan, then run A, run B; rows for memory and time, predicted vs measured."""
    preset, result = ctx.preset, BenchResult(NAME)
    size = preset.plan
    command = ctx.command(NAME)
    what = f"batch {size.batch_size} × max_seq_len {size.max_seq_len}, {size.steps} steps, {ctx.precision}"
    recipes = _recipes(ctx)
    reps = []
    for index in range(preset.reps):
        order = METHODS if index % 2 == 0 else METHODS[::-1]
        ctx.log(
            f"{NAME}: repetition {index + 1}/{preset.reps}: plan ({', '.join(order)}), then run {' then '.join(order)}"
        )
        rep: dict[str, Any] = {"order": list(order), "plan": _plan(ctx, recipes[order[0]], order), "runs": {}}
        for method in order:
            rep["runs"][method] = _run(ctx, recipes[method], f"{NAME}-{index}-{method}")
        for method in order:
            predicted = rep["plan"].get(method) or {}
            measured = rep["runs"][method]
            ctx.log(
                f"{NAME}:   {method}: memory {(predicted.get('predicted_bytes') or 0) / MB:,.0f} MB predicted, "
                f"{measured['peak_rss_mb']} MB measured; time {predicted.get('run_seconds')} s predicted, "
                f"{measured['train_s']} s measured"
            )
            if measured["error"]:
                result.notes.append(
                    f"repetition {index + 1}, {method} run failed: {str(measured['error'])[-300:]}"
                )
        if rep["plan"].get("error"):
            result.notes.append(f"repetition {index + 1}, plan failed: {str(rep['plan']['error'])[-300:]}")
        reps.append(rep)
    result.rows = accuracy_rows(reps, command, what)
    result.details = {
        "settings": {
            "model": "SmolLM2-135M-Instruct (fp32 folder from the GGUF)",
            "data": f"{size.batch_size * size.steps} distinct chatterbot-chat conversations (one epoch)",
            "batch_size": size.batch_size,
            "max_seq_len": size.max_seq_len,
            "steps": size.steps,
            "precision": ctx.precision,
            "probe_steps": preset.plan_probe_steps,
            "recipes": {method: str(path) for path, method in zip(recipes.values(), recipes, strict=True)},
        },
        "repetitions": reps,
    }
    missed = [row.name for row in result.rows if row.status == "missed"]
    if missed:
        result.notes.append("target missed: " + "; ".join(missed))
    return result
