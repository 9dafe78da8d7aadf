"""Multi-process speed: training tokens/s of `ftkit run` in 1 process (batch 2b) against 2 processes through
Accelerate's launcher (batch b each), the same global batch, rows, steps and seed, on SmolLM2-135M-Instruct.

On this 2-core CPU the 2 gloo processes get 1 thread each and the 1 process gets both, so the figure says what
splitting the cores costs or gains here (gradient all-reduce, two model copies, smaller matmuls), honestly even
below 1x; it is not a forecast for GPUs. Tokens are the global count (transformers gathers them across processes),
over process 0's train loop time. The sides alternate which goes first over >= 5 repetitions; the ratio pairs the
sides of one repetition (median, min, max).
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, child_env, ratio_stat, run_child

NAME = "multiprocess_speed"
SIDES = (("one", 1), ("two", 2))  # (side, processes)


def side_orders(reps: int) -> list[tuple[tuple[str, int], ...]]:
    """A B, B A, A B ...: alternating which side goes first cancels a steady drift in machine load."""
    return [SIDES if index % 2 == 0 else SIDES[::-1] for index in range(reps)]


def tokens_per_second(payload: dict[str, Any] | None) -> float | None:
    """Global training tokens over the train loop's seconds of a succeeded `ftkit run --json`, else None."""
    if not payload or payload.get("status") != "succeeded":
        return None
    metrics = payload.get("metrics") or {}
    tokens, seconds = metrics.get("train.tokens"), metrics.get("train.runtime_s")
    return tokens / seconds if tokens and seconds else None


def speed_rows(reps: list[dict[str, Any]], command: str, what: str) -> list[Row]:
    """tokens/s per side and the paired ratio 2 processes / 1 process."""
    rate = {side: [rep.get(side) for rep in reps] for side, _ in SIDES}
    return [
        Row(NAME, f"1 process, batch 2b ({what})", "tok/s", Stat.of(rate["one"]), command),
        Row(NAME, "2 processes (gloo), batch b each", "tok/s", Stat.of(rate["two"]), command),
        Row(NAME, "2 processes / 1 process, same global batch", "x", ratio_stat(rate["two"], rate["one"]), command,
            key="ratio"),
    ]  # fmt: skip


def run(ctx: Context) -> BenchResult:
    from benchmarks.assets import data_split
    from benchmarks.sides import TrainSpec, write_recipe

    size = ctx.preset.multiprocess
    split = data_split("chat", size.batch_size * 2 * size.steps, 4, ctx.workdir)
    result, command = BenchResult(NAME), ctx.command(NAME)
    reps: list[dict[str, Any]] = []
    for index, order in enumerate(side_orders(ctx.preset.reps)):
        record: dict[str, Any] = {"order": [side for side, _ in order]}
        for side, processes in order:
            spec = TrainSpec(model=ctx.model_dir, split=split, batch_size=size.batch_size * 2 // processes,
                             steps=size.steps, max_seq_len=size.max_seq_len, precision=ctx.precision)  # fmt: skip
            recipe = write_recipe(
                spec, ctx.workdir / "recipes" / f"{NAME}-{side}-{index}.yaml", ctx.workdir / "out"
            )
            ctx.log(f"{NAME}: repetition {index + 1}/{ctx.preset.reps}: {processes} process(es)")
            child = run_child(
                [sys.executable, "-m", "ftkit", "run", str(recipe), "--json", "--num-processes", str(processes),
                 "--registry", str(ctx.workdir / "registry")],
                cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s,
            )  # fmt: skip
            payload = child.json()
            record[side] = tokens_per_second(payload)
            record[f"{side}_loss"] = ((payload or {}).get("metrics") or {}).get("train.loss")
            if record[side] is None:
                result.notes.append(
                    f"repetition {index + 1}, {side}: {str((payload or {}).get('error') or child.tail())[-300:]}"
                )
        reps.append(record)
    what = f"LoRA r16 on SmolLM2-135M, chatterbot-chat, global batch {size.batch_size * 2}, {size.steps} steps, {ctx.precision}"
    result.rows = speed_rows(reps, command, what)
    result.details = {"settings": {"global_batch": size.batch_size * 2, "steps": size.steps,
                                   "max_seq_len": size.max_seq_len, "precision": ctx.precision},
                      "repetitions": reps}  # fmt: skip
    return result
