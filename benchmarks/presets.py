"""Benchmark sizes. `small` fits a 2-core CPU in under 15 minutes; `gpu` is for a CUDA machine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSize:
    batch_size: int
    steps: int
    max_seq_len: int = 1024


@dataclass(frozen=True)
class Preset:
    name: str
    precision: str  # fp32 | bf16 — the same on both sides of every comparison
    reps: int  # A B A B pairs for the overhead benchmark
    overhead: TrainSize
    defaults_chat: TrainSize
    defaults_gsm8k: TrainSize
    defaults_reps: int
    eval_rows: int
    memory: TrainSize
    cli_reps: int
    import_reps: int
    matmul_size: int
    matmul_reps: int
    child_timeout_s: float


SMALL = Preset(
    name="small",
    precision="fp32",
    reps=2,
    overhead=TrainSize(batch_size=4, steps=3),
    defaults_chat=TrainSize(batch_size=8, steps=3),
    defaults_gsm8k=TrainSize(batch_size=8, steps=1),  # both tools default to batch 8
    defaults_reps=1,
    eval_rows=8,
    memory=TrainSize(batch_size=4, steps=2),
    cli_reps=5,
    import_reps=3,
    matmul_size=2048,
    matmul_reps=5,
    child_timeout_s=900,
)

GPU = Preset(
    name="gpu",
    precision="bf16",
    reps=3,
    overhead=TrainSize(batch_size=16, steps=40),
    defaults_chat=TrainSize(batch_size=16, steps=40),
    defaults_gsm8k=TrainSize(batch_size=16, steps=40),
    defaults_reps=3,
    eval_rows=128,
    memory=TrainSize(batch_size=16, steps=10),
    cli_reps=10,
    import_reps=5,
    matmul_size=8192,
    matmul_reps=10,
    child_timeout_s=1800,
)

PRESETS = {preset.name: preset for preset in (SMALL, GPU)}
