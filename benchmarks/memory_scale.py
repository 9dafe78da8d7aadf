"""Memory at scale: peak RSS of ftkit's defaults vs plain TRL's true defaults on GSM8K chat rows, and the largest
model that trains with LoRA in 8 GB.

1. GSM8K as chat rows (question → worked answer), SmolLM2-135M-Instruct, LoRA r16 all-linear, batch 8 × 384 on
   both sides, `reps` alternated repetitions of three children: ftkit's defaults (precision auto, padding-free where
   exact, no gradient checkpointing on a CPU), plain TRL untouched (bf16 autocast, gradient checkpointing, padded,
   the model in its saved dtype), and ftkit with gradient checkpointing on (TRL's own setting, all else ftkit's).
   Peak RSS is each child's own (wait4): imports, model load, data, training, evaluation and saving.
2. Models of SmolLM2's published shapes and file dtype (360M, 1.7B; bf16 safetensors with random weights and the
   135M's tokenizer: memory does not depend on the values) trained for one step, from the smallest up: ftkit's
   defaults first, then (past 8 GB) with gradient checkpointing, then also with `precision: bf16` (the weights as
   stored, no fp32 copy for auto's check). The largest one under 8 GB is reported with the setting it needed.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.assets import CACHE_DIR, data_split
from benchmarks.context import Context
from benchmarks.defaults import alternate
from benchmarks.harness import (
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

NAME = "memory_scale"
LIMIT_MB = 8 * 1024
# SmolLM2's published shapes (config.json of HuggingFaceTB/SmolLM2-360M and -1.7B), tied embeddings, vocab 49,152.
SHAPES = {
    "SmolLM2-360M shape": dict(
        hidden_size=960,
        intermediate_size=2560,
        num_hidden_layers=32,
        num_attention_heads=15,
        num_key_value_heads=5,
    ),
    "SmolLM2-1.7B shape": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=24,
        num_attention_heads=32,
        num_key_value_heads=32,
    ),
}
# Tried in turn on each model until one trains within LIMIT_MB: ftkit's defaults (precision auto loads the weights in
# fp32 to check bf16 against them), gradient checkpointing, then bf16 weights as stored (no fp32 copy at load).
ATTEMPTS = (
    ("defaults", {}),
    ("gradient checkpointing on", {"gradient_checkpointing": True}),
    ("precision bf16, gradient checkpointing on", {"gradient_checkpointing": True, "precision": "bf16"}),
)
BUILD = """
import sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
base, out, shape = sys.argv[1], sys.argv[2], eval(sys.argv[3])
config = AutoConfig.from_pretrained(base)
for key, value in shape.items():
    setattr(config, key, value)
config.head_dim = config.hidden_size // config.num_attention_heads
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
model.to(torch.bfloat16).save_pretrained(out)  # saved in bf16, as SmolLM2-360M and -1.7B are published
print(sum(p.numel() for p in model.parameters()))
"""


def shaped_model(ctx: Context, name: str, shape: dict[str, int]) -> Path:
    """A random-weight model of `shape` with the 135M's config and tokenizer otherwise (built once, cached)."""
    folder = CACHE_DIR / "scale" / name.replace(" ", "-")
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    child = run_child(
        [sys.executable, "-c", BUILD, str(ctx.model_dir), str(partial), repr(shape)],
        cwd=REPO_ROOT,
        env=child_env(),
        timeout=ctx.preset.child_timeout_s,
    )
    if not child.ok:
        raise RuntimeError(f"building {name} failed: {child.tail()}")
    for tokenizer_file in ctx.model_dir.glob("*token*"):
        shutil.copy2(tokenizer_file, partial / tokenizer_file.name)
    shutil.copy2(ctx.model_dir / "generation_config.json", partial / "generation_config.json")
    partial.replace(folder)
    return folder


def _mb(runs: list[SideResult]) -> list[float | None]:
    return [run.peak_rss_mb if run.ok else None for run in runs]


def _rates(runs: list[SideResult]) -> list[float | None]:
    return [run.tokens_per_sec if run.ok else None for run in runs]


def run(ctx: Context) -> BenchResult:
    size = ctx.preset.memory_scale
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    work, timeout = ctx.workdir, ctx.preset.child_timeout_s
    split = data_split("gsm8k_chat", size.batch_size * size.steps, 4, work, seed=5)
    ftkit = TrainSpec(
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
    runs = alternate(
        ctx,
        "gsm8k_chat",
        {
            "ftkit": lambda tag: run_ftkit(ftkit, work, tag, timeout),
            "plain_true": lambda tag: run_plain(
                ftkit, work, tag, timeout, precision="default", checkpointing="default"
            ),
            "ftkit_checkpointing": lambda tag: run_ftkit(
                replace(ftkit, gradient_checkpointing=True), work, tag, timeout
            ),
        },
    )
    what = f"GSM8K chat rows, SmolLM2-135M LoRA r16, batch {size.batch_size} × {size.max_seq_len}, {size.steps} steps"
    ratio = ratio_stat(_mb(runs["ftkit"]), _mb(runs["plain_true"]))
    ratio_ckpt = ratio_stat(_mb(runs["ftkit_checkpointing"]), _mb(runs["plain_true"]))
    result.rows += [
        Row(
            NAME,
            f"ftkit defaults peak RSS ({what})",
            "MB",
            Stat.of(_mb(runs["ftkit"])),
            command,
            key="rss_ftkit",
        ),
        Row(
            NAME,
            "plain TRL true defaults peak RSS (bf16 autocast, gradient checkpointing, padded)",
            "MB",
            Stat.of(_mb(runs["plain_true"])),
            command,
            key="rss_plain_true",
        ),
        Row(
            NAME,
            "peak RSS ratio ftkit defaults / plain TRL true defaults",
            "x",
            ratio,
            command,
            target="<= 0.5x",
            status=check_target(ratio.median, maximum=0.5),
            key="ratio",
        ),
        Row(
            NAME,
            "ftkit with gradient checkpointing on (TRL's setting) peak RSS",
            "MB",
            Stat.of(_mb(runs["ftkit_checkpointing"])),
            command,
            key="rss_ftkit_checkpointing",
        ),
        Row(
            NAME,
            "peak RSS ratio ftkit with checkpointing / plain TRL true defaults",
            "x",
            ratio_ckpt,
            command,
            target="<= 0.5x",
            status=check_target(ratio_ckpt.median, maximum=0.5),
            key="ratio_checkpointing",
        ),
        Row(NAME, "ftkit defaults tokens/s (same runs)", "tok/s", Stat.of(_rates(runs["ftkit"])), command),
        Row(
            NAME,
            "plain TRL true defaults tokens/s (same runs)",
            "tok/s",
            Stat.of(_rates(runs["plain_true"])),
            command,
        ),
    ]
    result.details["gsm8k_chat"] = {name: [r.to_dict() for r in side] for name, side in runs.items()}
    errors = [f"{name}: {(r.error or '')[-300:]}" for name, side in runs.items() for r in side if not r.ok]

    largest: tuple[str, float] | None = None
    models = [("SmolLM2-135M", ctx.model_dir, None)]
    if ctx.preset.scale_shapes:
        models += [(name, None, shape) for name, shape in SHAPES.items()]
    for name, folder, shape in models:
        try:
            folder = folder or shaped_model(ctx, name, shape)
        except RuntimeError as error:
            errors.append(str(error)[-300:])
            break
        fitted = False
        for setting, changes in ATTEMPTS:
            # one step: the first step allocates everything a step needs (the peak repeats on later steps)
            spec = replace(ftkit, model=folder, steps=1, **changes)
            ctx.log(f"{NAME}: {name}, {setting}")
            outcome = run_ftkit(spec, work, f"{NAME}-{name.replace(' ', '-')}-{len(result.rows)}", timeout)
            params = outcome.total_params
            label = f"{name}" + (f" ({params / 1e6:,.0f}M parameters)" if params else "")
            result.rows.append(
                Row(
                    NAME,
                    f"peak RSS, {label}, LoRA r16, batch {size.batch_size} × {size.max_seq_len}, 1 step, ftkit {setting}",
                    "MB",
                    Stat.of([outcome.peak_rss_mb if outcome.ok else None]),
                    command,
                    target=f"<= {LIMIT_MB} MB",
                    status=check_target(outcome.peak_rss_mb if outcome.ok else None, maximum=LIMIT_MB),
                )
            )
            result.details.setdefault("scale", []).append(
                {"model": name, "setting": setting, **outcome.to_dict()}
            )
            if not outcome.ok:
                errors.append(f"{name} ({setting}): {(outcome.error or '')[-300:]}")
            if outcome.ok and outcome.peak_rss_mb and outcome.peak_rss_mb <= LIMIT_MB:
                fitted, largest = True, (f"{label}, ftkit {setting}", outcome.peak_rss_mb)
                break
        if not fitted:
            break
    if largest:
        result.notes.append(
            f"largest model trained within 8 GB (LoRA r16, batch {size.batch_size} × "
            f"{size.max_seq_len}): {largest[0]}, peak RSS {largest[1]:,.0f} MB"
        )
    result.notes.append(
        "peak RSS of the GSM8K pair: each child's own maximum resident set (wait4); sides alternated; the scale runs "
        "are one run each (N=1): memory, unlike time, barely varies between repetitions"
    )
    if errors:
        result.error = "; ".join(errors)
    return result
