"""Benchmark sizes. `small` takes about 97 minutes on a 2-core CPU (the results files' `seconds` summed: 5,806 s);
`gpu` is for a CUDA machine; `smoke` only checks that every piece runs (its figures mean nothing).

Every ratio comes from `reps` alternated repetitions (A B, then B A) of at least 10 optimizer steps per side in
`small`, so that a median and a spread exist and the first, slower step is a small part of each run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSize:
    batch_size: int
    steps: int
    max_seq_len: int = 1024


@dataclass(frozen=True)
class GenerationSize:
    prompts: int
    batch_size: int
    max_new_tokens: int


@dataclass(frozen=True)
class EvalSpeedSize:
    rows: int  # eval rows whose loss is measured
    generate: int  # of which this many are answered and scored
    batch_size: int
    max_new_tokens: int


@dataclass(frozen=True)
class Preset:
    name: str
    # Training precision of the identical-settings comparisons, the same on both sides. `auto`: what ftkit's own
    # `precision: auto` picks for SmolLM2 here (bf16 on a CPU with native bf16, else fp32).
    precision: str
    reps: int  # alternated repetitions of every two-sided comparison
    overhead: TrainSize
    defaults_chat: TrainSize
    defaults_gsm8k: TrainSize
    eval_rows: int
    memory: TrainSize
    cli_reps: int
    matmul_size: int
    matmul_reps: int
    child_timeout_s: float
    registry_runs: int = 1000
    registry_reps: int = 5
    methods: TrainSize = TrainSize(batch_size=4, steps=20, max_seq_len=256)
    methods_train_rows: int = 200
    methods_eval_rows: int = 32
    precision_widths: tuple[int, ...] = (64, 128, 256, 576)
    precision_reps: int = 5
    # plan_accuracy: `ftkit plan` then `ftkit run` of lora and full, `reps` alternated repetitions. Batch 4 × 128 and
    # 20 steps keep a repetition (one plan probing both methods, two runs) near 2.5 minutes on 2 cores, so 5 of them
    # fit in ~13 minutes; 20 steps make the first, slower step a small part of the measured train loop.
    plan: TrainSize = TrainSize(batch_size=4, steps=20, max_seq_len=128)
    plan_probe_steps: int = 3  # `ftkit plan --probe-steps` (its default)
    # generation_speed: rows/s of batched generation; 32 prompts keep the one-by-one side near 30 s on 2 cores.
    generation: GenerationSize = GenerationSize(prompts=32, batch_size=8, max_new_tokens=32)
    # eval_speed: rows/s of evaluation (loss over `rows`, generation metrics on `generate` of them); 32 + 16 rows
    # keep a repetition near 90 s on 2 cores (the one-by-one generation side ~30 s of it).
    eval_speed: EvalSpeedSize = EvalSpeedSize(rows=32, generate=16, batch_size=8, max_new_tokens=32)
    # multiprocess_speed: 1 process x batch 2b vs 2 processes x batch b (b = batch_size); 10 steps of 4 rows per
    # process keep a repetition (two `ftkit run`s, each loading the model) near 2 minutes on 2 cores.
    multiprocess: TrainSize = TrainSize(batch_size=4, steps=10, max_seq_len=256)
    # checkpoint_speed: one run per method, a checkpoint after each of `reps` steps; batch 2 x 128 keeps the steps
    # short, since the step itself is not measured (full fine-tuning's ~1.6 GB checkpoints dominate the time).
    checkpoint: TrainSize = TrainSize(batch_size=2, steps=5, max_seq_len=128)
    # tracking_overhead: one run without tracking and one per tracker (mlflow, tensorboard, wandb) per repetition;
    # 10 steps of batch 2 x 128 on one torch thread keep a run near 40 s on 2 busy cores, so 5 repetitions of 4 runs
    # take ~13 minutes.
    tracking: TrainSize = TrainSize(batch_size=2, steps=10, max_seq_len=128)
    # preference_speed: per repetition ftkit DPO, plain TRL DPO and ftkit SFT (for memory), one torch thread; a DPO
    # step of 2 pairs runs 4 sequences plus the reference's forward, so 10 steps of 2 x 256 keep the three runs of
    # a repetition near 3 minutes on 2 cores.
    preference: TrainSize = TrainSize(batch_size=2, steps=10, max_seq_len=256)
    # memory_scale: the shape (GSM8K chat rows, batch 8 x 384); 3 steps keep a repetition of its three
    # children near 3 minutes on 2 cores. `scale_shapes`: also train SmolLM2's 360M and 1.7B shapes (~10 minutes).
    memory_scale: TrainSize = TrainSize(batch_size=8, steps=3, max_seq_len=384)
    scale_shapes: bool = True


SMALL = Preset(
    name="small",
    precision="auto",
    reps=5,
    overhead=TrainSize(batch_size=4, steps=10),
    # Both tools default to batch 8; 4 keeps the full run near 35 minutes on 2 cores, and gives padding-free
    # batches less to gain than 8 would (fewer pads to remove), so it flatters neither side.
    defaults_chat=TrainSize(batch_size=4, steps=10),
    defaults_gsm8k=TrainSize(batch_size=4, steps=10, max_seq_len=512),
    eval_rows=24,
    memory=TrainSize(batch_size=4, steps=3),
    cli_reps=10,  # one round of every command's start-up takes ~4 s
    matmul_size=2048,
    matmul_reps=5,
    child_timeout_s=900,
)

GPU = Preset(
    name="gpu",
    precision="bf16",
    reps=5,
    overhead=TrainSize(batch_size=16, steps=40),
    defaults_chat=TrainSize(batch_size=16, steps=40),
    defaults_gsm8k=TrainSize(batch_size=16, steps=40),
    eval_rows=128,
    memory=TrainSize(batch_size=16, steps=10),
    cli_reps=10,
    matmul_size=8192,
    matmul_reps=10,
    child_timeout_s=1800,
    methods=TrainSize(batch_size=8, steps=40, max_seq_len=512),
    plan=TrainSize(batch_size=8, steps=40, max_seq_len=512),
)

SMOKE = Preset(
    name="smoke",
    precision="auto",
    reps=1,
    overhead=TrainSize(batch_size=2, steps=2),
    defaults_chat=TrainSize(batch_size=2, steps=2),
    defaults_gsm8k=TrainSize(batch_size=2, steps=2, max_seq_len=256),
    eval_rows=4,
    memory=TrainSize(batch_size=2, steps=1),
    cli_reps=1,
    matmul_size=512,
    matmul_reps=2,
    child_timeout_s=900,
    registry_runs=20,
    registry_reps=1,
    methods=TrainSize(batch_size=2, steps=2, max_seq_len=128),
    methods_train_rows=8,
    methods_eval_rows=4,
    precision_widths=(64, 256),
    precision_reps=2,
    plan=TrainSize(batch_size=2, steps=2, max_seq_len=64),
    plan_probe_steps=1,
    generation=GenerationSize(prompts=4, batch_size=2, max_new_tokens=4),
    eval_speed=EvalSpeedSize(rows=4, generate=2, batch_size=2, max_new_tokens=4),
    tracking=TrainSize(batch_size=2, steps=2, max_seq_len=64),
    preference=TrainSize(batch_size=2, steps=2, max_seq_len=128),
    memory_scale=TrainSize(batch_size=2, steps=1, max_seq_len=128),
    scale_shapes=False,
)

PRESETS = {preset.name: preset for preset in (SMALL, GPU, SMOKE)}


def resolve_precision(precision: str) -> str:
    """A preset's precision for this machine: `auto` is bf16 where the CPU computes bf16 natively, else fp32."""
    if precision != "auto":
        return precision
    from ftkit.train.precision import native_bf16

    return "bf16" if native_bf16() else "fp32"
