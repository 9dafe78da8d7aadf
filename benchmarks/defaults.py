"""Defaults: what ftkit does by default vs what plain TRL does by default, on chatterbot-chat and GSM8K (LoRA).

Three comparisons, each from `reps` repetitions whose sides run alternately (A B C D, then D C B A, ...):

1. Data path (both datasets): ftkit's defaults (padding-free where exact) vs plain TRL padding each batch to its
   longest row — at the same precision (what ftkit's `auto` picks here) and the same loss (assistant replies /
   answers only: TRL `assistant_only_loss` with SmolLM2's template marked for it, `completion_only_loss` for
   prompt/completion rows; both mark the same tokens on 898 of the 899 distinct conversations). Quality on the same
   held-out rows with one metric (benchmarks/eval_loss.py: ftkit's rendering and loss, completion tokens), next to
   the untrained base model's loss on those rows.
2. True defaults (both datasets): ftkit's defaults vs TRL's own defaults, untouched — SFTConfig's bf16=True
   (autocast), gradient checkpointing on, the model in its saved dtype, TRL's default loss (every token of a
   conversation; the completion of prompt/completion rows). Its held-out loss on the same rows is reported too.
3. Precision (chat): ftkit's defaults vs the same with `training.precision: fp32` — what `precision: auto`'s
   choice of bf16 gains on this CPU.

On a CPU a pad costs as much as a real token, so removing pads speeds up by at most processed / real tokens of the
padded side (the `ceiling` rows).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

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
from benchmarks.sides import SideResult, TrainSpec, run_ftkit, run_plain

NAME = "defaults"
DATASETS = (("chat", "chatterbot-chat"), ("completion", "GSM8K"))
KEYS = {"chat": "chat", "completion": "gsm8k"}


def evaluate(ctx: Context, spec: TrainSpec, outputs: list[str]) -> dict[str, float]:
    """Held-out loss of each output folder (adapter or model; the base model folder scores the base)."""
    command = [
        sys.executable,
        str(BENCH_DIR / "eval_loss.py"),
        "--base",
        str(spec.model),
        "--eval",
        str(spec.split.eval),
        "--format",
        spec.split.format,
        "--max-seq-len",
        str(spec.max_seq_len),
        *outputs,
    ]
    child = run_child(command, cwd=REPO_ROOT, env=child_env(), timeout=ctx.preset.child_timeout_s)
    payload = child.json()
    if not child.ok or not payload:
        raise RuntimeError(f"eval_loss.py failed: {child.tail()}")
    return {output: scores.get("loss") for output, scores in payload["results"].items()}


def alternate(
    ctx: Context, label: str, sides: dict[str, Callable[[str], SideResult]]
) -> dict[str, list[SideResult]]:
    """Every side once per repetition, in the given order, reversed every other repetition."""
    runs: dict[str, list[SideResult]] = {name: [] for name in sides}
    order = list(sides)
    for rep in range(ctx.preset.reps):
        for name in order if rep % 2 == 0 else order[::-1]:
            ctx.log(f"{NAME}/{label}: rep {rep + 1}/{ctx.preset.reps} {name}")
            outcome = sides[name](f"{NAME}-{label}-{name}-{rep}")
            runs[name].append(outcome)
            ctx.log(
                f"{NAME}/{label}: {name} {outcome.tokens_per_sec:.1f} tok/s {outcome.settings}"
                if outcome.ok
                else f"{NAME}/{label}: {name} failed: {(outcome.error or '')[-300:]}"
            )
    return runs


def _rates(runs: list[SideResult], steady: bool = False) -> list[float | None]:
    return [run.steady_tokens_per_sec if steady else run.tokens_per_sec for run in runs]


def _settings(runs: list[SideResult]) -> str:
    used = next((run.settings for run in runs if run.ok), {})
    parts = [str(used.get("precision") or "?")]
    parts.append("padding-free" if used.get("padding_free") else "padded")
    if used.get("gradient_checkpointing"):
        parts.append("gradient checkpointing")
    return ", ".join(parts)


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    errors: list[str] = []
    timeout, work = preset.child_timeout_s, ctx.workdir
    for kind, label in DATASETS:
        key = KEYS[kind]
        size = preset.defaults_chat if kind == "chat" else preset.defaults_gsm8k
        split = data_split(kind, size.batch_size * size.steps, preset.eval_rows, ctx.workdir, seed=1)
        ftkit = TrainSpec(  # ftkit's defaults for everything a data-path comparison does not fix
            model=ctx.model_dir,
            split=split,
            method="lora",
            batch_size=size.batch_size,
            steps=size.steps,
            max_seq_len=size.max_seq_len,
            precision="auto",
            padding_free=None,
            gradient_checkpointing=None,
        )
        sides: dict[str, Callable[[str], SideResult]] = {
            "ftkit": lambda tag, spec=ftkit: run_ftkit(spec, work, tag, timeout),
            "plain": lambda tag, spec=ftkit: run_plain(
                spec, work, tag, timeout, precision=ctx.precision, completion_only=True
            ),
        }
        sides["plain_true"] = lambda tag, spec=ftkit: run_plain(
            spec, work, tag, timeout, precision="default", checkpointing="default"
        )
        if kind == "chat":
            sides["ftkit_fp32"] = lambda tag, spec=replace(ftkit, precision="fp32"): run_ftkit(
                spec, work, tag, timeout
            )
        runs = alternate(ctx, key, sides)
        errors += [
            f"{label} {name}: {(r.error or '')[-300:]}" for name in runs for r in runs[name] if not r.ok
        ]
        outputs = [
            r.output_dir
            for name in ("ftkit", "plain", "plain_true")
            for r in runs[name]
            if r.ok and r.output_dir
        ]
        losses: dict[str, float] = {}
        ctx.log(
            f"{NAME}/{label}: evaluating the base model and {len(outputs)} outputs on {len(split.eval.read_text().splitlines())} rows"
        )
        try:
            losses = evaluate(ctx, ftkit, [str(ctx.model_dir), *outputs])
        except RuntimeError as error:
            errors.append(str(error)[-300:])
        ftkit_runs, plain_runs = runs["ftkit"], runs["plain"]
        ceiling = Stat.of(
            [
                r.metrics.get("train.processed_tokens") / r.tokens
                for r in plain_runs
                if r.ok and r.tokens and r.metrics.get("train.processed_tokens")
            ]
        )
        ratio = ratio_stat(_rates(ftkit_runs), _rates(plain_runs))
        what = f"{label}, LoRA r16, batch {size.batch_size}, {size.steps} steps"
        result.rows += [
            Row(
                NAME,
                f"ftkit defaults tokens/s ({what}; {_settings(ftkit_runs)})",
                "tok/s",
                Stat.of(_rates(ftkit_runs)),
                command,
                key=f"tok_ftkit_{key}",
            ),
            Row(
                NAME,
                f"plain TRL tokens/s ({label}; {_settings(plain_runs)}, loss on replies only)",
                "tok/s",
                Stat.of(_rates(plain_runs)),
                command,
                key=f"tok_plain_{key}",
            ),
            Row(
                NAME, f"ratio ftkit / plain TRL, data path ({label})", "x", ratio, command, key=f"ratio_{key}"
            ),
            Row(
                NAME,
                f"ratio ftkit / plain TRL, steady state after step 1 ({label})",
                "x",
                ratio_stat(_rates(ftkit_runs, True), _rates(plain_runs, True)),
                command,
                key=f"steady_{key}",
            ),
            Row(
                NAME,
                f"ceiling on CPU: processed / real tokens of the padded side ({label})",
                "x",
                ceiling,
                command,
                key=f"ceiling_{key}",
            ),
            Row(
                NAME,
                f"held-out loss of the base model ({label}, {preset.eval_rows} rows, completion tokens)",
                "nats",
                Stat.of([losses.get(str(ctx.model_dir))]),
                command,
                key=f"eval_base_{key}",
            ),
            Row(
                NAME,
                f"held-out loss after training, ftkit ({label}, same rows)",
                "nats",
                Stat.of([losses.get(r.output_dir) for r in ftkit_runs if r.ok]),
                command,
                key=f"eval_ftkit_{key}",
            ),
            Row(
                NAME,
                f"held-out loss after training, plain TRL ({label}, same rows, same loss)",
                "nats",
                Stat.of([losses.get(r.output_dir) for r in plain_runs if r.ok]),
                command,
                key=f"eval_plain_{key}",
            ),
        ]
        true = runs["plain_true"]
        true_ratio = ratio_stat(_rates(ftkit_runs), _rates(true))
        suffix = "" if kind == "chat" else f"_{key}"  # the chat rows keep the keys the README quoted first
        result.rows += [
            Row(
                NAME,
                f"plain TRL true defaults tokens/s ({label}; {_settings(true)}, TRL's default loss)",
                "tok/s",
                Stat.of(_rates(true)),
                command,
                key=f"tok_plain_true{suffix}",
            ),
            Row(
                NAME,
                f"ratio ftkit defaults / plain TRL true defaults ({label})",
                "x",
                true_ratio,
                command,
                target=">= 1.8x",
                status=check_target(true_ratio.median, minimum=1.8),
                key=f"ratio_true{suffix}",
            ),
            Row(
                NAME,
                f"held-out loss after training, plain TRL true defaults ({label}, same rows and steps)",
                "nats",
                Stat.of([losses.get(r.output_dir) for r in true if r.ok]),
                command,
                key=f"eval_true_{key}",
            ),
        ]
        if kind == "chat":
            fp32 = runs["ftkit_fp32"]
            result.rows += [
                Row(
                    NAME,
                    f"ftkit defaults with precision fp32, tokens/s ({label}; {_settings(fp32)})",
                    "tok/s",
                    Stat.of(_rates(fp32)),
                    command,
                    key="tok_ftkit_fp32",
                ),
                Row(
                    NAME,
                    f"ratio ftkit {_settings(ftkit_runs).split(',')[0]} / ftkit fp32 ({label}, all else equal)",
                    "x",
                    ratio_stat(_rates(ftkit_runs), _rates(fp32)),
                    command,
                    key="ratio_precision",
                ),
            ]
        if ratio.median and ceiling.median and ratio.median > ceiling.median * 1.05:
            result.notes.append(
                f"{label}: the data-path ratio {ratio.median:.2f} exceeds the ceiling of pad removal alone "
                f"{ceiling.median:.2f}: ftkit's chunked loss and per-sequence attention also do less work per token "
                "than TRL's fused head and dense mask (or the load changed: see load_average per run in the details)"
            )
        result.details[key] = {
            "spec": {name: str(value) for name, value in vars(ftkit).items()},
            "runs": {name: [r.to_dict() for r in side_runs] for name, side_runs in runs.items()},
            "eval_loss": losses,
        }
        ctx.shared.setdefault("defaults", {})[kind] = runs
    result.notes.append(
        "sides ran alternately (A B C D, then D C B A): each ratio pairs the two sides of one repetition; "
        "min and max are over the repetitions"
    )
    if errors:
        result.error = "; ".join(errors)
    return result
