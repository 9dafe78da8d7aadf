"""Preference tuning (issue 16): `ftkit run` of a `task: preference` recipe (DPO, sigmoid loss, beta 0.1, LoRA r16
all-linear) vs the plain TRL script benchmarks/plain_dpo.py (`DPOTrainer` + `DPOConfig` + peft `LoraConfig`) at
identical settings, alternated A B, B A, ...; and, in the same repetition, `ftkit run` of SFT at the same settings
on the chosen answers, and of SFT on the chosen and the rejected answers at twice the batch (the very sequences a DPO
step forwards), for memory.

Data: PandaLM preference pairs (../shared/data/pandalm-preference/pairs_majority.jsonl). The harness keeps the pairs
whose prompt, chosen and rejected are non-empty strings with chosen != rejected (the file's 7 rows with a bool or
empty `chosen` fail ftkit's data check; its 51 empty `rejected` are left out too), shuffles them once (seed 0) and
writes eval rows then train rows, prompt/chosen/rejected only; both sides read that file. The ftkit recipe keeps
`data.skip_invalid_rows: true`; a run that still skips a row is an error, since the sides would then see
different batches. The SFT side trains on the same pairs as prompt/completion rows (completion = chosen); the
SFT-pairs side on two completion rows per pair (chosen, rejected) at batch 2 × batch, 2 × pairs rows.

Identical on both DPO sides: model folder (fp32), rows and order (same file, seed and data seed), batch, steps,
max length, learning rate (linear schedule, no warm-up, no weight decay, clipping at 1.0), LoRA dropout (and TRL's
default `disable_dropout` on both), fp32, gradient checkpointing off (stated in the recipe; the run's resolved
recipe is checked), one torch thread (OMP_NUM_THREADS=1; on 2 shared cores, two OpenMP threads make step times
swing far more than the ratio measured). Reported: non-pad tokens/s over the train loop and the ratio ftkit / plain
of each repetition (median, min, max; target >= 1.00); |loss difference| on the first 3 logged steps (the largest
of each repetition, max over repetitions; target <= 1e-4); peak RSS of ftkit DPO / ftkit SFT at the same batch
(target <= 1.15: no second full model loaded for the reference), / ftkit SFT-pairs (the same target where both
forward the same sequences: a DPO step holds chosen and rejected, twice the sequences of an SFT step at the same
batch) and / plain TRL DPO (what DPO itself costs shows on both sides).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks.assets import DATA_ROOT
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
    shell_join,
)
from benchmarks.sides import ftkit_history

NAME = "preference_speed"
PAIRS_FILE = DATA_ROOT / "pandalm-preference" / "pairs_majority.jsonl"
SIDES = ("ftkit", "plain")
BETA, LOSS_TYPE, LORA_DROPOUT, LEARNING_RATE, SEED = 0.1, "sigmoid", 0.05, 2e-4, 42
EVAL_ROWS = 2
LOSS_STEPS = 3
LOSS_TARGET = 1e-4
RATIO_TARGET = 1.0
RSS_TARGET = 1.15


# -- the math (unit-tested on hand-worked values) ---------------------------------------------------------


def loss_difference(ftkit: list[dict[str, float]], plain: list[dict[str, float]], steps: int = LOSS_STEPS):
    """The largest |ftkit loss - plain loss| over the first `steps` steps logged by both, matched by step number;
    None when the sides share no logged step among them."""
    mine = {int(row["step"]): float(row["loss"]) for row in ftkit if "loss" in row}
    theirs = {int(row["step"]): float(row["loss"]) for row in plain if "loss" in row}
    shared = sorted(set(mine) & set(theirs))[:steps]
    if not shared:
        return None
    return max(abs(mine[step] - theirs[step]) for step in shared)


def paired(runs: dict[str, list[dict[str, Any]]], key: str, top: str, bottom: str) -> Stat:
    """Per repetition: runs[top][i][key] / runs[bottom][i][key] (a failed run leaves its repetition out)."""
    return ratio_stat([run.get(key) for run in runs[top]], [run.get(key) for run in runs[bottom]])


def loss_stat(runs: dict[str, list[dict[str, Any]]]) -> Stat:
    """Per repetition: the largest first-steps |loss difference| between ftkit and plain DPO."""
    return Stat.of(
        [
            loss_difference(mine.get("losses", []), theirs.get("losses", []))
            for mine, theirs in zip(runs["ftkit"], runs["plain"], strict=False)
            if "error" not in mine and "error" not in theirs
        ]
    )


def result_rows(runs: dict[str, list[dict[str, Any]]], command: str, what: str) -> list[Row]:
    """Tokens/s of both sides and their ratio, the first-steps loss difference, and the DPO / SFT memory ratio."""
    ratio, loss = paired(runs, "tokens_per_sec", "ftkit", "plain"), loss_stat(runs)
    rss = paired(runs, "peak_rss_mb", "ftkit", "sft")
    rss_plain = paired(runs, "peak_rss_mb", "ftkit", "plain")
    rss_pairs = paired(runs, "peak_rss_mb", "ftkit", "sft_pairs") if runs.get("sft_pairs") else None
    steady = paired(runs, "steady_tokens_per_sec", "ftkit", "plain")

    def of(side: str, key: str) -> Stat:
        return Stat.of([run.get(key) for run in runs[side]])

    return [
        Row(NAME, f"ftkit DPO tokens/s ({what})", "tok/s", of("ftkit", "tokens_per_sec"), command, key="ftkit"),
        Row(NAME, "plain TRL DPOTrainer tokens/s (same settings)", "tok/s", of("plain", "tokens_per_sec"), command,
            key="plain"),
        Row(NAME, "ratio ftkit / plain TRL, train loop", "x", ratio, command, target=">= 1.00",
            status=check_target(ratio.median, minimum=RATIO_TARGET), key="ratio"),
        Row(NAME, "ratio ftkit / plain TRL, steady state (after step 1)", "x", steady, command, key="steady"),
        Row(NAME, f"abs(loss ftkit - loss plain TRL), largest over the first {LOSS_STEPS} steps", "", loss, command,
            target="<= 1e-4", status=check_target(loss.max, maximum=LOSS_TARGET), key="loss_diff"),
        Row(NAME, "peak RSS, ftkit DPO", "MB", of("ftkit", "peak_rss_mb"), command, key="rss_dpo"),
        Row(NAME, "peak RSS, ftkit SFT on the chosen answers (same settings)", "MB", of("sft", "peak_rss_mb"),
            command, key="rss_sft"),
        Row(NAME, "peak RSS, plain TRL DPO", "MB", of("plain", "peak_rss_mb"), command, key="rss_plain"),
        Row(NAME, "peak RSS ftkit DPO / ftkit SFT (no second full model)", "x", rss, command, target="<= 1.15",
            status=check_target(rss.median, maximum=RSS_TARGET), key="rss_ratio"),
        Row(NAME, "peak RSS ftkit DPO / plain TRL DPO (what DPO itself costs is on both sides)", "x", rss_plain,
            command, key="rss_vs_plain"),
    ] + ([
        Row(NAME, "peak RSS, ftkit SFT on chosen and rejected at twice the batch (the sequences of a DPO step)", "MB",
            of("sft_pairs", "peak_rss_mb"), command, key="rss_sft_pairs"),
        Row(NAME, "peak RSS ftkit DPO / ftkit SFT on the same sequences per step (no second full model)", "x",
            rss_pairs, command, target="<= 1.15", status=check_target(rss_pairs.median, maximum=RSS_TARGET),
            key="rss_ratio_same_sequences"),
    ] if rss_pairs is not None else [])  # fmt: skip


# -- data and recipes -------------------------------------------------------------------------------------


def valid_pair(row: dict[str, Any]) -> bool:
    """Three non-empty strings, chosen != rejected: a pair every side reads the same way."""
    fields = [row.get(key) for key in ("prompt", "chosen", "rejected")]
    if not all(isinstance(value, str) and value.strip() for value in fields):
        return False
    return fields[1].strip() != fields[2].strip()


def preference_data(
    train_rows: int, eval_rows: int, workdir: Path, source: Path = PAIRS_FILE
) -> dict[str, Path]:
    """Deterministic train and eval files of valid PandaLM pairs, and the same pairs as SFT completion rows."""
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    pairs = [{key: row[key] for key in ("prompt", "chosen", "rejected")} for row in rows if valid_pair(row)]
    random.Random(0).shuffle(pairs)
    if train_rows + eval_rows > len(pairs):
        raise ValueError(f"{source} has {len(pairs)} valid pairs; asked for {train_rows} + {eval_rows}")
    parts = {"eval": pairs[:eval_rows], "train": pairs[eval_rows : eval_rows + train_rows]}
    folder = workdir / "data" / f"pandalm-{train_rows}-{eval_rows}"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, part in parts.items():
        files[name] = folder / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(pair) + "\n" for pair in part))
        files[f"sft_{name}"] = folder / f"sft_{name}.jsonl"
        files[f"sft_{name}"].write_text(
            "".join(json.dumps({"prompt": p["prompt"], "completion": p["chosen"]}) + "\n" for p in part)
        )
        files[f"sft_pairs_{name}"] = folder / f"sft_pairs_{name}.jsonl"
        files[f"sft_pairs_{name}"].write_text(
            "".join(
                json.dumps({"prompt": p["prompt"], "completion": p[answer]}) + "\n"
                for p in part
                for answer in ("chosen", "rejected")
            )
        )
    return files


def recipe(ctx: Context, files: dict[str, Path], task: str, pairs: bool = False) -> Path:
    """The ftkit recipe of one side: `preference` (DPO) or `causal-lm` (SFT on the chosen answers; with `pairs`,
    on the chosen and the rejected answers at twice the batch)."""
    size = ctx.preset.preference
    sft = task == "causal-lm"
    prefix = ("sft_pairs_" if pairs else "sft_") if sft else ""
    data: dict[str, Any] = {"train": str(files[f"{prefix}train"]),
                            "eval": str(files[f"{prefix}eval"]),
                            "format": "completion" if sft else "preference", "skip_invalid_rows": True}  # fmt: skip
    training = {"epochs": 1, "max_steps": size.steps, "learning_rate": LEARNING_RATE, "batch_size": size.batch_size,
                "grad_accum": 1, "max_seq_len": size.max_seq_len, "seed": SEED, "warmup_steps": 0,
                "weight_decay": 0.0, "lr_scheduler": "linear", "max_grad_norm": 1.0, "precision": "fp32",
                "gradient_checkpointing": False, "logging_steps": 1}  # fmt: skip
    if sft:
        training["padding_free"] = False  # padded batches, as DPO's
    if pairs:
        training["batch_size"] = 2 * size.batch_size
    side = ("sft-pairs" if pairs else "sft") if sft else "dpo"
    body: dict[str, Any] = {
        "name": f"bench-{side}",
        "model": str(ctx.model_dir),
        "task": task,
        "data": data,
        "method": {
            "name": "lora",
            "r": 16,
            "alpha": 32,
            "dropout": LORA_DROPOUT,
            "target_modules": "all-linear",
        },
        "training": training,
        "evaluation": {
            "compare_base": False,
            "max_rows": EVAL_ROWS,
            "batch_size": size.batch_size,
            "during_training": 0,
        },  # fmt: skip
        "output": str(ctx.workdir / "outputs"),
    }
    if not sft:
        body["preference"] = {"objective": "dpo", "beta": BETA, "loss_type": LOSS_TYPE, "reference": "auto"}
    path = ctx.workdir / "recipes" / f"{NAME}-{side}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by benchmarks/{NAME}.py\n{yaml.safe_dump(body, sort_keys=False)}")
    return path


# -- the sides --------------------------------------------------------------------------------------------


def one_thread_env() -> dict[str, str]:
    return child_env({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


def steady(steps: list[dict[str, float]]) -> float | None:
    """Tokens/s from the end of the first to the end of the last step."""
    points = [(row["time_s"], row["tokens"]) for row in steps if row.get("tokens") is not None]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def run_ftkit_side(ctx: Context, path: Path, tag: str) -> dict[str, Any]:
    """One `ftkit run` (one torch thread): tokens/s over the train loop, per-step losses, peak RSS, settings."""
    registry = ctx.workdir / "registry"
    command = [sys.executable, "-m", "ftkit", "run", str(path), "--json", "--registry", str(registry)]
    child = run_child(command, cwd=REPO_ROOT, env=one_thread_env(), timeout=ctx.preset.child_timeout_s)
    payload = child.json() or {}
    out: dict[str, Any] = {"tag": tag, "wall_s": round(child.wall_s, 2), "peak_rss_mb": child.max_rss_mb,
                           "load_average": list(os.getloadavg())}  # fmt: skip
    if not child.ok or payload.get("status") != "succeeded":
        out["error"] = str(payload.get("error") or child.tail())[-400:]
        return out
    metrics = payload["metrics"]
    history = ftkit_history(registry, payload["run_id"])
    resolved_file = Path(payload.get("output_dir") or "") / "resolved.yaml"
    resolved = yaml.safe_load(resolved_file.read_text()) if resolved_file.is_file() else {}
    tokens, seconds = metrics.get("train.tokens"), metrics.get("train.runtime_s")
    out.update(
        tokens=tokens,
        train_s=seconds,
        tokens_per_sec=tokens / seconds if tokens and seconds else None,
        steady_tokens_per_sec=steady([{"time_s": r["time_s"], "tokens": r["tokens_per_sec"] * r["time_s"]}
                                      for r in history if "tokens_per_sec" in r and "loss" in r]),  # fmt: skip
        losses=[{"step": r["step"], "loss": r["loss"]} for r in history if "loss" in r],
        skipped_rows=metrics.get("data.skipped_rows"),
        trainable_params=metrics.get("train.trainable_params"),
        settings={key: resolved.get("training", {}).get(key)
                  for key in ("precision", "gradient_checkpointing", "padding_free", "batch_size", "max_seq_len")},
    )  # fmt: skip
    return out


def run_plain_side(ctx: Context, files: dict[str, Path], tag: str) -> dict[str, Any]:
    """One run of benchmarks/plain_dpo.py (one torch thread) on the same file and numbers as the recipe."""
    size = ctx.preset.preference
    arguments = ["--model", str(ctx.model_dir), "--train", str(files["train"]), "--beta", str(BETA),
                 "--loss-type", LOSS_TYPE, "--batch-size", str(size.batch_size), "--steps", str(size.steps),
                 "--max-length", str(size.max_seq_len), "--learning-rate", str(LEARNING_RATE), "--seed", str(SEED),
                 "--lora-dropout", str(LORA_DROPOUT), "--gradient-checkpointing", "off",
                 "--output", str(ctx.workdir / "outputs" / f"plain-{tag}"), "--json"]  # fmt: skip
    child = run_child([sys.executable, str(BENCH_DIR / "plain_dpo.py"), *arguments], cwd=REPO_ROOT,
                      env=one_thread_env(), timeout=ctx.preset.child_timeout_s)  # fmt: skip
    payload = child.json()
    out: dict[str, Any] = {"tag": tag, "wall_s": round(child.wall_s, 2), "peak_rss_mb": child.max_rss_mb,
                           "load_average": list(os.getloadavg()),
                           "command": "python benchmarks/plain_dpo.py " + shell_join(arguments)}  # fmt: skip
    if not child.ok or not payload:
        out["error"] = child.tail()[-400:]
        return out
    metrics = payload["metrics"]
    tokens, seconds = metrics.get("train.tokens"), metrics.get("train.runtime_s")
    out.update(
        tokens=tokens,
        train_s=seconds,
        tokens_per_sec=tokens / seconds if tokens and seconds else None,
        steady_tokens_per_sec=steady(payload.get("steps", [])),
        losses=payload.get("losses", []),
        trainable_params=metrics.get("train.trainable_params"),
        adapters=payload.get("peft_adapters"),
    )
    return out


def checks(runs: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[str]]:
    """(errors, notes) about whether the sides really trained the same thing."""
    errors = [f"{run['tag']}: {run['error']}" for side in runs for run in runs[side] if "error" in run]
    notes = []
    good = [run for side in runs for run in runs[side] if "error" not in run]
    skipped = [run["tag"] for run in good if run.get("skipped_rows")]
    if skipped:
        errors.append(
            f"ftkit skipped rows the plain side trained on (different batches): {', '.join(skipped)}"
        )
    wrong = [run["tag"] for run in good if run.get("settings") and (
        run["settings"]["precision"] != "fp32" or run["settings"]["gradient_checkpointing"] is not False)]  # fmt: skip
    if wrong:
        errors.append(f"ftkit resolved other than fp32 without gradient checkpointing: {', '.join(wrong)}")
    dpo = [run for run in good if run["tag"].split("-")[0] in SIDES]
    counts = sorted({run.get("tokens") for run in dpo})
    if len(counts) > 1:
        notes.append(
            f"non-pad token counts differ between DPO runs: {[(r['tag'], r.get('tokens')) for r in dpo]}"
        )
    elif counts:
        notes.append(f"every DPO run (both sides) trained on the same {counts[0]} non-pad tokens")
    params = sorted({run.get("trainable_params") for run in dpo})
    if len(params) > 1:
        notes.append(f"trainable parameter counts differ: {params}")
    busy = [f"{run['tag']} ({run['load_average'][0]:.1f})" for run in good
            if run["load_average"][0] > (os.cpu_count() or 1) + 0.5]  # fmt: skip
    if busy:
        notes.append("1-minute load average above the core count when these runs ended (other processes competed "
                     "for the cores): " + ", ".join(busy))  # fmt: skip
    return errors, notes


def run(ctx: Context) -> BenchResult:
    size, reps = ctx.preset.preference, ctx.preset.reps
    files = preference_data(size.batch_size * size.steps, EVAL_ROWS, ctx.workdir)
    recipes = {"ftkit": recipe(ctx, files, "preference"), "sft": recipe(ctx, files, "causal-lm"),
               "sft_pairs": recipe(ctx, files, "causal-lm", pairs=True)}  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {"ftkit": [], "plain": [], "sft": [], "sft_pairs": []}
    for rep in range(reps):
        # A B, then B A (a steady drift in load falls on both sides alike); the SFT sides after, for memory only
        for side in (*(SIDES if rep % 2 == 0 else SIDES[::-1]), "sft", "sft_pairs"):
            tag = f"{side}-{rep}"
            if side == "plain":
                outcome = run_plain_side(ctx, files, tag)
            else:
                outcome = run_ftkit_side(ctx, recipes[side], tag)
            runs[side].append(outcome)
            ctx.log(f"{NAME}: rep {rep + 1}/{reps} {side}: " + (
                f"failed: {outcome['error']}" if "error" in outcome else
                f"{outcome['tokens']} tokens in {outcome['train_s']:.1f} s, peak RSS {outcome['peak_rss_mb']} MB, "
                f"losses {[round(row['loss'], 6) for row in outcome['losses'][:LOSS_STEPS]]}"))  # fmt: skip
    what = (f"LoRA r16 all-linear, SmolLM2-135M, PandaLM pairs, DPO sigmoid beta {BETA}, batch {size.batch_size}, "
            f"{size.steps} steps, max_seq_len {size.max_seq_len}, fp32, one torch thread")  # fmt: skip
    result = BenchResult(NAME, rows=result_rows(runs, ctx.command(NAME), what))
    result.details = {
        "settings": {"batch_size": size.batch_size, "steps": size.steps, "max_seq_len": size.max_seq_len,
                     "learning_rate": LEARNING_RATE, "seed": SEED, "beta": BETA, "loss_type": LOSS_TYPE,
                     "lora_dropout": LORA_DROPOUT, "precision": "fp32", "gradient_checkpointing": False,
                     "torch_threads": 1, "reps": reps, "order": "ftkit plain sft sft_pairs, then plain ftkit sft sft_pairs",
                     "data": f"{PAIRS_FILE} (valid pairs, shuffled with seed 0)"},
        "recipes": {side: path.read_text() for side, path in recipes.items()},
        "runs": runs,
    }  # fmt: skip
    errors, result.notes = checks(runs)
    if errors:
        result.error = "; ".join(errors)
    return result
