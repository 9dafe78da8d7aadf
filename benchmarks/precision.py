"""Precision: bf16 autocast vs fp32 training-step time on this CPU, by model width — why `precision: auto` needs
both a CPU with native bf16 and a model of 1M+ parameters (ftkit.train.precision.MIN_PARAMETERS) before it uses bf16.

For each hidden size, a 2-layer Llama (vocab 400, random weights, intermediate size twice the hidden size)
runs one forward and backward pass on a batch of 8 x 64 tokens, in fp32 and under bf16 autocast, alternately;
the ratio is bf16 time / fp32 time per repetition (below 1: bf16 is faster). The SmolLM2-135M LoRA training ratio
is in the `defaults` benchmark (row "ratio ftkit bf16 / ftkit fp32").
"""

from __future__ import annotations

import sys

from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, child_env, run_child

NAME = "precision"

STEP = """
import json, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
hidden, reps = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
config = LlamaConfig(vocab_size=400, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
model = LlamaForCausalLM(config)
ids = torch.randint(0, 400, (8, 64))
def step(bf16):
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start
step(False); step(True)  # warm-up: oneDNN picks its kernels on first use
times = {"fp32": [], "bf16": []}
for rep in range(reps):
    for bf16 in ((False, True) if rep % 2 == 0 else (True, False)):
        times["bf16" if bf16 else "fp32"].append(step(bf16))
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
                  **times}))
"""


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    from ftkit.train.precision import MIN_PARAMETERS, native_bf16

    flags = native_bf16()
    for hidden in preset.precision_widths:
        child = run_child(
            [sys.executable, "-c", STEP, str(hidden), str(preset.precision_reps)],
            cwd=REPO_ROOT,
            env=child_env(),
            timeout=600,
        )
        payload = child.json()
        if not child.ok or not payload:
            result.error = f"hidden {hidden}: {child.tail()}"
            break
        ratios = [bf16 / fp32 for bf16, fp32 in zip(payload["bf16"], payload["fp32"], strict=True)]
        params = payload["parameters"]
        side = "above" if params >= MIN_PARAMETERS else "below"
        result.rows.append(
            Row(
                NAME,
                f"bf16 autocast / fp32 step time, 2-layer Llama hidden {hidden} ({params:,} parameters, {side} "
                f"auto's {MIN_PARAMETERS:,}), forward+backward 8x64 tokens, {payload['threads']} threads",
                "x",
                Stat.of(ratios),
                command,
                key=f"ratio_{hidden}",
            )
        )
        result.details[str(hidden)] = payload
    result.notes.append(
        "native bf16 on this CPU: "
        + (", ".join(flags) if flags else "none (bf16 is emulated here, so auto keeps fp32)")
        + "; below 1.000 bf16 is faster"
    )
    return result
