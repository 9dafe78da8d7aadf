"""Memory: peak RSS (and peak GPU memory where there is a GPU) of lora, qlora and full on SmolLM2-135M-Instruct.

Each training runs in its own child process; peak RSS is that child's own maximum resident set (wait4), so it covers
everything the process did: imports, model load, data, training and saving. ftkit runs next to the plain TRL
script for lora and full (TRL has no qlora of its own; it needs bitsandbytes and usually a GPU). Both sides use
padded batches here, so the comparison is at identical settings. When the overhead benchmark ran in the same
invocation, its LoRA children (same model, data shape, batch and padded path) give the lora rows (median of its
repetitions) instead of two more trainings.
"""

from __future__ import annotations

import sys

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, child_env, gpu_info, run_child
from benchmarks.sides import TrainSpec, run_ftkit, run_plain

NAME = "memory"
METHODS = ("lora", "qlora", "full")


def method_missing(name: str) -> str | None:
    """Why ftkit cannot run a method here (not registered, or its requirements unmet), or None."""
    code = (
        "from ftkit.methods.catalog import get_method\n"
        f"method = get_method({name!r})\n"
        "method.check_requirements()\n"
    )
    child = run_child([sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env(), timeout=120)
    if child.ok:
        return None
    lines = [line for line in (child.stderr or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {child.returncode}"


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    size = preset.memory
    split = data_split("chat", size.batch_size * size.steps, 4, ctx.workdir, seed=2)
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    has_gpu = bool(gpu_info())
    what = f"batch {size.batch_size}, {size.steps} steps, {ctx.precision}, padded batches"
    for method in METHODS:
        spec = TrainSpec(
            model=ctx.model_dir,
            split=split,
            method=method,
            batch_size=size.batch_size,
            steps=size.steps,
            max_seq_len=size.max_seq_len,
            learning_rate=2e-5 if method == "full" else 2e-4,
            precision="auto" if method == "qlora" else ctx.precision,
            padding_free=False,
            train_on="all",
        )
        sides = [("ftkit", run_ftkit)] + ([("plain TRL", run_plain)] if method != "qlora" else [])
        by_side = {}
        if method == "lora" and "overhead" in ctx.shared:
            reused = ctx.shared["overhead"]
            for side, key in (("ftkit", "ftkit"), ("plain TRL", "plain")):
                runs = [run for run in reused[key] if run.ok]
                rss = Stat.of([run.peak_rss_mb for run in runs])
                result.rows.append(
                    Row(
                        NAME,
                        f"lora {side} peak RSS (overhead runs: padded, batch {preset.overhead.batch_size})",
                        "MB",
                        rss,
                        command,
                    )
                )
                if has_gpu:
                    result.rows.append(
                        Row(
                            NAME,
                            f"lora {side} peak GPU memory",
                            "MB",
                            Stat.of([run.peak_gpu_mb for run in runs]),
                            command,
                        )
                    )
                if runs:
                    by_side[side] = runs[0]
            ftkit_rss = Stat.of([run.peak_rss_mb for run in reused["ftkit"] if run.ok]).median
            plain_rss = Stat.of([run.peak_rss_mb for run in reused["plain"] if run.ok]).median
            if ftkit_rss and plain_rss:
                result.rows.append(
                    Row(
                        NAME,
                        "lora peak RSS ratio ftkit / plain (medians of the overhead runs)",
                        "x",
                        Stat.of([ftkit_rss / plain_rss]),
                        command,
                        key="ratio_lora",
                    )
                )
            result.details[method] = {side: run.to_dict() for side, run in by_side.items()}
            continue
        missing = method_missing(method)
        for side, runner in sides:
            if side == "ftkit" and missing:
                result.rows.append(
                    Row(
                        NAME,
                        f"{method} ftkit peak RSS",
                        "MB",
                        Stat.of([]),
                        command,
                        note=f"missing: {missing}",
                    )
                )
                result.notes.append(f"{method}: not measured — {missing}")
                continue
            ctx.log(f"{NAME}: {method} {side}")
            outcome = runner(spec, ctx.workdir, f"{NAME}-{method}-{side.split()[0]}", preset.child_timeout_s)
            by_side[side] = outcome
            if not outcome.ok:
                result.rows.append(
                    Row(
                        NAME,
                        f"{method} {side} peak RSS",
                        "MB",
                        Stat.of([]),
                        command,
                        note=f"failed: {(outcome.error or '').strip().splitlines()[-1:]}",
                    )
                )
                result.notes.append(f"{method} {side} failed: {(outcome.error or '')[-400:]}")
                continue
            ctx.log(f"{NAME}: {method} {side} peak RSS {outcome.peak_rss_mb} MB")
            result.rows.append(
                Row(NAME, f"{method} {side} peak RSS ({what})", "MB", Stat.of([outcome.peak_rss_mb]), command)
            )
            if has_gpu:
                result.rows.append(
                    Row(
                        NAME,
                        f"{method} {side} peak GPU memory",
                        "MB",
                        Stat.of([outcome.peak_gpu_mb]),
                        command,
                    )
                )
        if "ftkit" in by_side and "plain TRL" in by_side and by_side["ftkit"].ok and by_side["plain TRL"].ok:
            ftkit_rss, plain_rss = by_side["ftkit"].peak_rss_mb, by_side["plain TRL"].peak_rss_mb
            if ftkit_rss and plain_rss:
                result.rows.append(
                    Row(
                        NAME,
                        f"{method} peak RSS ratio ftkit / plain",
                        "x",
                        Stat.of([ftkit_rss / plain_rss]),
                        command,
                        key=f"ratio_{method}",
                    )
                )
        result.details[method] = {side: outcome.to_dict() for side, outcome in by_side.items()}
        ctx.shared.setdefault("memory", {})[method] = by_side
    return result
