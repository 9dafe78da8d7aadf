"""Defaults win: ftkit's default data path (padding-free batches) vs plain TRL's default (pad to the longest row).

On chatterbot-chat (short, varied chat rows) and GSM8K (longer question/answer rows). Each side keeps its own
data-path defaults — ftkit: padding-free, loss on completions; TRL: padding, loss on every token of a conversation
and on the completion of prompt/completion rows — while model, rows, batch, steps, learning rate, LoRA config and
precision are the same. Quality is checked on the same held-out rows with the same metric for both: every saved
adapter is scored by benchmarks/eval_loss.py (ftkit's rendering and `causal_lm_loss`, completion tokens only).
Target: tokens/s ratio >= 1.8.

The ceiling of the ratio when compute is proportional to tokens (CPUs) is processed / real tokens of the padded
side, i.e. 1 / (1 - pad fraction); it is reported next to the measured ratio.
"""

from __future__ import annotations

import sys

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import (
    BENCH_DIR,
    REPO_ROOT,
    BenchResult,
    Row,
    Stat,
    check_target,
    child_env,
    ratio_stat,
    run_child,
)
from benchmarks.sides import TrainSpec, run_ftkit, run_plain

NAME = "defaults"
DATASETS = (("chat", "chatterbot-chat"), ("completion", "GSM8K"))


def evaluate(ctx: Context, spec: TrainSpec, outputs: list[str]) -> dict[str, float]:
    script = BENCH_DIR / "eval_loss.py"
    command = [
        sys.executable,
        str(script),
        "--base",
        str(spec.model),
        "--eval",
        str(spec.split.eval),
        "--format",
        spec.split.format,
        *outputs,
    ]
    child = run_child(command, cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s)
    payload = child.json()
    if not child.ok or not payload:
        raise RuntimeError(f"eval_loss.py failed: {child.tail()}")
    return {output: scores.get("loss") for output, scores in payload["results"].items()}


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    errors = []
    for kind, label in DATASETS:
        size = preset.defaults_chat if kind == "chat" else preset.defaults_gsm8k
        split = data_split(kind, size.batch_size * size.steps, preset.eval_rows, ctx.workdir, seed=1)
        spec = TrainSpec(
            model=ctx.model_dir,
            split=split,
            method="lora",
            batch_size=size.batch_size,
            steps=size.steps,
            max_seq_len=size.max_seq_len,
            precision=preset.precision,
            padding_free=None,  # each side's default
        )
        ftkit_runs, plain_runs = [], []
        for rep in range(preset.defaults_reps):
            for side, runner, runs in (("ftkit", run_ftkit, ftkit_runs), ("plain", run_plain, plain_runs)):
                ctx.log(f"{NAME}/{label}: rep {rep + 1}/{preset.defaults_reps} {side}")
                outcome = runner(spec, ctx.workdir, f"{NAME}-{kind}-{side}-{rep}", preset.child_timeout_s)
                runs.append(outcome)
                if outcome.ok:
                    ctx.log(f"{NAME}/{label}: {side} {outcome.tokens_per_sec:.1f} tok/s")
                else:
                    errors.append(f"{label} {side}: {(outcome.error or '')[-300:]}")
        outputs = [run.output_dir for run in ftkit_runs + plain_runs if run.ok and run.output_dir]
        losses: dict[str, float] = {}
        if outputs:
            ctx.log(f"{NAME}/{label}: evaluating {len(outputs)} outputs on {preset.eval_rows} rows")
            try:
                losses = evaluate(ctx, spec, outputs)
            except RuntimeError as error:
                errors.append(str(error)[-300:])
        ftkit_rate = [run.tokens_per_sec for run in ftkit_runs]
        plain_rate = [run.tokens_per_sec for run in plain_runs]
        ratio = ratio_stat(ftkit_rate, plain_rate)
        ceiling = Stat.of(
            [
                run.metrics.get("train.processed_tokens") / run.tokens
                for run in plain_runs
                if run.ok and run.tokens and run.metrics.get("train.processed_tokens")
            ]
        )
        what = f"{label}, LoRA, batch {size.batch_size}, {size.steps} steps, {preset.precision}"
        result.rows += [
            Row(
                NAME, f"ftkit defaults tokens/s ({what}; padding-free)", "tok/s", Stat.of(ftkit_rate), command
            ),
            Row(
                NAME, f"plain TRL defaults tokens/s ({label}; padding)", "tok/s", Stat.of(plain_rate), command
            ),
            Row(
                NAME,
                f"ratio ftkit / plain ({label})",
                "x",
                ratio,
                command,
                target=">= 1.80",
                status=check_target(ratio.median, minimum=1.8),
            ),
            Row(
                NAME,
                f"ratio ftkit / plain, steady state after step 1 ({label})",
                "x",
                ratio_stat(
                    [run.steady_tokens_per_sec for run in ftkit_runs],
                    [run.steady_tokens_per_sec for run in plain_runs],
                ),
                command,
            ),
            Row(
                NAME,
                f"ceiling on CPU: processed / real tokens of the padded side ({label})",
                "x",
                ceiling,
                command,
            ),
            Row(
                NAME,
                f"eval loss ftkit ({label}, {preset.eval_rows} held-out rows, completion tokens)",
                "nats",
                Stat.of([losses.get(run.output_dir) for run in ftkit_runs if run.ok]),
                command,
            ),
            Row(
                NAME,
                f"eval loss plain TRL ({label}, same rows, same metric)",
                "nats",
                Stat.of([losses.get(run.output_dir) for run in plain_runs if run.ok]),
                command,
            ),
        ]
        if ratio.median and ceiling.median and ratio.median > ceiling.median * 1.05:
            result.notes.append(
                f"{label}: the measured ratio {ratio.median:.2f} exceeds the CPU ceiling {ceiling.median:.2f}; "
                "the machine's load changed between the two runs (see load_average in the JSON)"
            )
        result.details[kind] = {
            "spec": {k: str(v) for k, v in vars(spec).items()},
            "ftkit": [run.to_dict() for run in ftkit_runs],
            "plain": [run.to_dict() for run in plain_runs],
            "eval_loss": losses,
        }
        ctx.shared.setdefault("defaults", {})[kind] = {"ftkit": ftkit_runs, "plain": plain_runs}
    result.notes.append(
        "on a CPU a training step costs about the same per token whether it is a pad or not, so removing pads "
        "can speed up by at most processed/real tokens of the padded side (the `ceiling` rows); the ratio "
        "grows with batch size and with the spread of row lengths"
    )
    if errors:
        result.error = "; ".join(errors)
    return result
