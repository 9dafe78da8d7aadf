"""Throughput overhead: ftkit LoRA vs the plain TRL script at identical settings, alternated A B, B A, A B ...
(each repetition is one A B comparison; which side goes first alternates).

Identical: model folder, train rows (same file, same seed, so the same batches in the same order), sequence
length, batch size, steps, learning rate, LoRA config (r 16, alpha 32, dropout 0.05, all-linear), precision and
no gradient checkpointing. Identical data path too: ftkit runs with `training.padding_free: false`, so both sides
pad each batch to its longest row (TRL's default collator), and `data.train_on: all`, so both take loss on every
token. Reported: non-pad training tokens per second over the train loop, and the ratio ftkit / plain of each
repetition, reported as median and min–max over the repetitions. Target: ratio >= 1.00.
"""

from __future__ import annotations

import os

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import BenchResult, Row, Stat, check_target, ratio_stat
from benchmarks.sides import TrainSpec, run_ftkit, run_plain

NAME = "overhead"


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    size = preset.overhead
    split = data_split("chat", size.batch_size * size.steps, 4, ctx.workdir)
    spec = TrainSpec(
        model=ctx.model_dir,
        split=split,
        method="lora",
        batch_size=size.batch_size,
        steps=size.steps,
        max_seq_len=size.max_seq_len,
        precision=ctx.precision,
        padding_free=False,
        train_on="all",
    )
    result = BenchResult(NAME)
    ftkit_runs, plain_runs = [], []
    sides = (("ftkit", run_ftkit, ftkit_runs), ("plain", run_plain, plain_runs))
    for rep in range(preset.reps):
        # A B, then B A: alternating which side goes first cancels a steady drift in machine load
        for side, runner, runs in sides if rep % 2 == 0 else sides[::-1]:
            ctx.log(f"{NAME}: rep {rep + 1}/{preset.reps} {side}")
            outcome = runner(spec, ctx.workdir, f"{NAME}-{side}-{rep}", preset.child_timeout_s)
            runs.append(outcome)
            if not outcome.ok:
                ctx.log(f"{NAME}: {side} failed: {outcome.error}")
            else:
                ctx.log(
                    f"{NAME}: {side} {outcome.tokens} tokens in {outcome.train_s:.1f} s "
                    f"= {outcome.tokens_per_sec:.1f} tok/s"
                )
    result.details = {
        "spec": {k: str(v) for k, v in vars(spec).items()},
        "ftkit": [run.to_dict() for run in ftkit_runs],
        "plain": [run.to_dict() for run in plain_runs],
    }
    failures = [run for run in ftkit_runs + plain_runs if not run.ok]
    if failures:
        result.error = "; ".join(f"{run.side}: {(run.error or '')[-300:]}" for run in failures)
    command = ctx.command(NAME)
    what = (
        f"LoRA r16 on SmolLM2-135M, chatterbot-chat, batch {size.batch_size}, {size.steps} steps, "
        f"{ctx.precision}, padded batches on both sides"
    )
    ftkit_rate = [run.tokens_per_sec for run in ftkit_runs]
    plain_rate = [run.tokens_per_sec for run in plain_runs]
    ratio = ratio_stat(ftkit_rate, plain_rate)
    steady = ratio_stat(
        [run.steady_tokens_per_sec for run in ftkit_runs], [run.steady_tokens_per_sec for run in plain_runs]
    )
    result.rows = [
        Row(NAME, f"ftkit tokens/s ({what})", "tok/s", Stat.of(ftkit_rate), command),
        Row(NAME, "plain TRL tokens/s (same settings)", "tok/s", Stat.of(plain_rate), command),
        Row(
            NAME,
            "ratio ftkit / plain, train loop",
            "x",
            ratio,
            command,
            target=">= 1.00",
            status=check_target(ratio.median, minimum=1.0),
            key="ratio",
        ),
        Row(NAME, "ratio ftkit / plain, steady state (after step 1)", "x", steady, command, key="steady"),
    ]
    tokens = {(run.side, run.tokens) for run in ftkit_runs + plain_runs if run.ok}
    token_counts = sorted({count for _, count in tokens if count is not None})
    if len(token_counts) > 1:
        result.notes.append(f"non-pad token counts differ between runs: {sorted(tokens)}")
    elif token_counts:
        result.notes.append(
            f"both sides trained on exactly the same {token_counts[0]} non-pad tokens per run "
            "(same rows, same order, same tokenization)"
        )
    busy = [
        f"{run.side} {run.train_s:.0f} s (load {run.load_average[0]})"
        for run in ftkit_runs + plain_runs
        if run.ok and run.load_average and run.load_average[0] > (os.cpu_count() or 1) + 0.5
    ]
    if busy:
        result.notes.append(
            "other processes competed for the cores during some runs (1-minute load average above the core "
            "count when they ended): " + ", ".join(busy) + "; rerun on an idle machine"
        )
    ctx.shared["overhead"] = {"ftkit": ftkit_runs, "plain": plain_runs}
    return result
