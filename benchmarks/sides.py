"""Running one training on either side — `ftkit run` or the plain TRL script — each in its own child process.

Both sides are measured the same way: non-pad tokens counted by the trainer (`num_input_tokens_seen` with
`include_num_input_tokens_seen="non_padding"`) over the wall time of `trainer.train()` (the train loop, without
process start, model load or data preparation), plus a steady-state rate that leaves out the first step
(`(tokens_last - tokens_first) / (t_last - t_first)` from per-step timings). Peak RSS is the child's own (wait4).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.assets import Split
from benchmarks.harness import (
    BENCH_DIR,
    REPO_ROOT,
    child_env,
    gpu_info,
    load_average,
    run_child,
    shell_join,
)


@dataclass
class TrainSpec:
    """Everything that must be identical on both sides of a comparison."""

    model: Path
    split: Split
    method: str = "lora"  # lora | qlora | full
    batch_size: int = 4
    steps: int = 4
    max_seq_len: int = 1024
    learning_rate: float = 2e-4
    seed: int = 42
    precision: str = (
        "fp32"  # ftkit's training.precision (auto | fp32 | bf16); the plain side needs fp32 | bf16
    )
    padding_free: bool | None = None  # None: each side's default (ftkit: auto; TRL: padding)
    gradient_checkpointing: bool | None = False  # ftkit's; None keeps ftkit's default (auto)
    train_on: str | None = None  # ftkit data.train_on; None keeps ftkit's default (completion)
    eval_max_rows: int = 1  # ftkit's own post-training evaluation; benchmarks evaluate with eval_loss.py


@dataclass
class SideResult:
    side: str
    ok: bool
    command: str
    tokens: int | None = None
    train_s: float | None = None
    tokens_per_sec: float | None = None
    steady_tokens_per_sec: float | None = None
    train_loss: float | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    wall_s: float | None = None
    output_dir: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, float]] = field(
        default_factory=list
    )  # cumulative time_s and tokens after each step
    load_average: list[float] | None = None  # when the child finished
    settings: dict[str, Any] = field(
        default_factory=dict
    )  # precision, padding_free, gradient_checkpointing used

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steady_rate(steps: list[dict[str, float]]) -> float | None:
    """Tokens per second between the end of the first and the end of the last step."""
    points = [(row["time_s"], row["tokens"]) for row in steps if row.get("tokens") is not None]
    if len(points) < 2:
        return None
    (t0, n0), (t1, n1) = points[0], points[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


# -- ftkit ------------------------------------------------------------------------------------------------


def write_recipe(spec: TrainSpec, path: Path, output: Path) -> Path:
    data: dict[str, Any] = {
        "train": str(spec.split.train),
        "eval": str(spec.split.eval),
        "format": spec.split.format,
    }
    if spec.train_on:
        data["train_on"] = spec.train_on
    method: dict[str, Any] = {"name": spec.method}
    if spec.method in ("lora", "qlora"):
        method.update({"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"})
    training: dict[str, Any] = {
        "epochs": 1,
        "max_steps": spec.steps,
        "learning_rate": spec.learning_rate,
        "batch_size": spec.batch_size,
        "grad_accum": 1,
        "max_seq_len": spec.max_seq_len,
        "seed": spec.seed,
        "precision": spec.precision,
        "logging_steps": 1,
    }
    if spec.gradient_checkpointing is not None:
        training["gradient_checkpointing"] = spec.gradient_checkpointing
    if spec.padding_free is not None:
        training["padding_free"] = spec.padding_free
    recipe = {
        "name": f"bench-{spec.method}",
        "model": str(spec.model),
        "task": "causal-lm",
        "data": data,
        "method": method,
        "training": training,
        "evaluation": {"compare_base": False, "max_rows": spec.eval_max_rows},
        "output": str(output),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# written by benchmarks/sides.py\n{yaml.safe_dump(recipe, sort_keys=False)}")
    return path


def ftkit_history(registry: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's per-step history from the registry (git plumbing; the registry has no work tree)."""
    import json

    try:
        out = subprocess.run(
            ["git", "-C", str(registry), "show", f"HEAD:runs/{run_id}/history.jsonl"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode:
        return []
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def run_ftkit(spec: TrainSpec, workdir: Path, tag: str, timeout: float | None = None) -> SideResult:
    recipe = write_recipe(spec, workdir / "recipes" / f"{tag}.yaml", workdir / "outputs")
    registry = workdir / "registry"
    command = [sys.executable, "-m", "ftkit", "run", str(recipe), "--json", "--registry", str(registry)]
    child = run_child(command, cwd=REPO_ROOT, env=child_env(), timeout=timeout)
    shown = "ftkit run " + shell_join([str(recipe), "--json"])
    payload = child.json()
    if not child.ok or not payload or payload.get("status") != "succeeded":
        error = (payload or {}).get("error") or child.tail()
        return SideResult(
            "ftkit", False, shown, wall_s=child.wall_s, peak_rss_mb=child.max_rss_mb, error=error
        )
    metrics = payload["metrics"]
    history = ftkit_history(registry, payload["run_id"])
    resolved_path = Path(payload.get("output_dir") or "") / "resolved.yaml"
    resolved = yaml.safe_load(resolved_path.read_text()) if resolved_path.is_file() else {}
    used = resolved.get("training", {})
    steps = [
        {"step": row["step"], "time_s": row["time_s"], "tokens": row["tokens_per_sec"] * row["time_s"]}
        for row in history
        if "tokens_per_sec" in row and "time_s" in row
    ]
    return SideResult(
        side="ftkit",
        ok=True,
        command=shown,
        tokens=metrics.get("train.tokens"),
        train_s=metrics.get("train.runtime_s"),
        tokens_per_sec=_rate(metrics.get("train.tokens"), metrics.get("train.runtime_s")),
        steady_tokens_per_sec=steady_rate(steps),
        train_loss=metrics.get("train.loss"),
        trainable_params=metrics.get("train.trainable_params"),
        total_params=metrics.get("train.total_params"),
        peak_rss_mb=child.max_rss_mb,
        # ftkit reports peak GPU memory on CUDA and its own peak RSS otherwise
        peak_gpu_mb=metrics.get("train.peak_memory_mb") if gpu_info() else None,
        wall_s=child.wall_s,
        output_dir=payload.get("output_dir"),
        metrics=metrics,
        steps=steps,
        load_average=load_average(),
        settings={key: used.get(key) for key in ("precision", "padding_free", "gradient_checkpointing")},
    )


# -- plain TRL --------------------------------------------------------------------------------------------


def run_plain(
    spec: TrainSpec,
    workdir: Path,
    tag: str,
    timeout: float | None = None,
    *,
    precision: str | None = None,
    checkpointing: str = "off",
    completion_only: bool = False,
) -> SideResult:
    """The plain TRL script on the spec's model, rows and sizes. precision: fp32 | bf16 | default (TRL's own),
    None for the spec's; checkpointing: on | off | default; completion_only: the loss on replies only."""
    script = BENCH_DIR / "plain_trl.py"
    arguments = [
        "--model",
        str(spec.model),
        "--train",
        str(spec.split.train),
        "--format",
        spec.split.format,
        "--method",
        spec.method,
        "--batch-size",
        str(spec.batch_size),
        "--steps",
        str(spec.steps),
        "--max-length",
        str(spec.max_seq_len),
        "--learning-rate",
        str(spec.learning_rate),
        "--seed",
        str(spec.seed),
        "--precision",
        precision or spec.precision,
        "--gradient-checkpointing",
        checkpointing,
        "--output",
        str(workdir / "outputs" / f"plain-{tag}"),
        "--json",
    ]
    if spec.padding_free:
        arguments.append("--padding-free")
    if completion_only:
        arguments.append("--completion-only")
    command = [sys.executable, str(script), *arguments]
    child = run_child(command, cwd=REPO_ROOT, env=child_env(), timeout=timeout)
    shown = "python benchmarks/plain_trl.py " + shell_join(arguments)
    payload = child.json()
    if not child.ok or not payload:
        return SideResult(
            "plain-trl", False, shown, wall_s=child.wall_s, peak_rss_mb=child.max_rss_mb, error=child.tail()
        )
    metrics = payload["metrics"]
    return SideResult(
        side="plain-trl",
        ok=True,
        command=shown,
        tokens=metrics.get("train.tokens"),
        train_s=metrics.get("train.runtime_s"),
        tokens_per_sec=_rate(metrics.get("train.tokens"), metrics.get("train.runtime_s")),
        steady_tokens_per_sec=steady_rate(payload.get("steps", [])),
        train_loss=metrics.get("train.loss"),
        trainable_params=metrics.get("train.trainable_params"),
        total_params=metrics.get("train.total_params"),
        peak_rss_mb=child.max_rss_mb,
        peak_gpu_mb=metrics.get("train.peak_gpu_memory_mb"),
        wall_s=child.wall_s,
        output_dir=payload.get("output_dir"),
        metrics=metrics,
        steps=payload.get("steps", []),
        load_average=load_average(),
        settings={
            "precision": "bf16" if metrics.get("train.bf16") else "fp32",
            "padding_free": bool(spec.padding_free),
            "gradient_checkpointing": metrics.get("train.gradient_checkpointing"),
        },
    )


def _rate(tokens: float | None, seconds: float | None) -> float | None:
    return tokens / seconds if tokens and seconds else None
