"""Compute efficiency: achieved training FLOP/s as a fraction of this machine's measured dense matmul FLOP/s.

Training FLOPs per real (non-pad) token, N = parameters of the base model that take part in matmuls (all linear
layers and the tied embedding used as the LM head; norms and the attention-score terms, which grow with sequence
length, are left out, as in Kaplan et al. 2020):

- full fine-tuning: 6·N (forward 2N, backward 4N: gradients for activations and for weights);
- LoRA (frozen base): 4·N + 6·N_adapter (forward 2N and activation gradients 2N through the frozen base; no
  weight gradients for it; the adapter's own weights cost 6 per parameter like any trained weight).

The peaks are the medians of a few `torch.matmul` calls on large square matrices in fp32 and, where training uses
it, bf16; each run is compared with the peak of the precision it trained in (target: at least half of it). Training
runs are reused from the other benchmarks of the same invocation.
"""

from __future__ import annotations

import json
import sys

from benchmarks.assets import data_split
from benchmarks.context import Context
from benchmarks.harness import REPO_ROOT, BenchResult, Row, Stat, check_target, child_env, run_child
from benchmarks.sides import SideResult, TrainSpec, run_ftkit

NAME = "efficiency"

MATMUL = """
import json, statistics, sys, time, torch
size, reps, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cuda = torch.cuda.is_available()
device = "cuda" if cuda else "cpu"
dtype = torch.bfloat16 if precision == "bf16" else torch.float32
a = torch.randn(size, size, device=device, dtype=dtype)
b = torch.randn(size, size, device=device, dtype=dtype)
def once():
    if cuda: torch.cuda.synchronize()
    start = time.perf_counter()
    a @ b
    if cuda: torch.cuda.synchronize()
    return time.perf_counter() - start
for _ in range(2): once()
rates = [2 * size ** 3 / once() for _ in range(reps)]
print(json.dumps({"flops": rates, "threads": torch.get_num_threads(), "device": device, "dtype": str(dtype)}))
"""


def training_flops_per_token(run: SideResult, method: str) -> float | None:
    total, trainable = run.total_params, run.trainable_params
    if not total:
        return None
    if method == "full":
        return 6.0 * total
    base = total - (trainable or 0)
    return 4.0 * base + 6.0 * (trainable or 0)


def matmul_peak(ctx: Context, precision: str) -> tuple[Stat, dict]:
    """Dense matmul FLOP/s in `precision` (fp32 | bf16), measured in a child process."""
    preset = ctx.preset
    child = run_child(
        [sys.executable, "-c", MATMUL, str(preset.matmul_size), str(preset.matmul_reps), precision],
        cwd=REPO_ROOT,
        env=child_env(),
        timeout=600,
    )
    payload = child.json()
    if not child.ok or not payload:
        raise RuntimeError(f"matmul measurement ({precision}) failed: {child.tail()}")
    return Stat.of(payload["flops"]), payload


def run(ctx: Context) -> BenchResult:
    preset = ctx.preset
    result = BenchResult(NAME)
    command = ctx.command(NAME)
    peaks: dict[str, Stat] = {}
    for precision in dict.fromkeys(("fp32", ctx.precision)):  # fp32 always; bf16 too where training uses it
        try:
            peaks[precision], payload = matmul_peak(ctx, precision)
        except RuntimeError as error:
            result.error = str(error)
            return result
        result.rows.append(
            Row(
                NAME,
                f"dense matmul {preset.matmul_size}² {precision} on {payload['device']} "
                f"({payload['threads']} threads)",
                "FLOP/s",
                peaks[precision],
                command,
                key=f"peak_{precision}",
            )
        )
        result.details[f"matmul_{precision}"] = payload
    sources: list[tuple[str, str, list[SideResult]]] = []
    shared = ctx.shared
    if "overhead" in shared:
        sources.append(("lora", "ftkit LoRA, padded (overhead runs)", shared["overhead"]["ftkit"]))
        sources.append(("lora", "plain TRL LoRA, padded (overhead runs)", shared["overhead"]["plain"]))
    if "chat" in shared.get("defaults", {}):
        sources.append(
            ("lora", "ftkit LoRA, padding-free (defaults, chat)", shared["defaults"]["chat"]["ftkit"])
        )
    if "full" in shared.get("memory", {}) and "ftkit" in shared["memory"]["full"]:
        sources.append(("full", "ftkit full, padded (memory run)", [shared["memory"]["full"]["ftkit"]]))
    if "completion" in shared.get(
        "defaults", {}
    ):  # defaults keys its runs by data kind: GSM8K is "completion"
        sources.append(
            ("lora", "ftkit LoRA, padding-free (defaults, GSM8K)", shared["defaults"]["completion"]["ftkit"])
        )
    if not sources:
        size = preset.defaults_chat
        split = data_split("chat", size.batch_size * size.steps, 4, ctx.workdir, seed=4)
        spec = TrainSpec(ctx.model_dir, split, "lora", size.batch_size, size.steps, precision=ctx.precision)
        ctx.log(f"{NAME}: one ftkit LoRA run (no other benchmark ran in this invocation)")
        sources.append(("lora", "ftkit LoRA, defaults", [run_ftkit(spec, ctx.workdir, "efficiency")]))
    for method, label, runs in sources:
        achieved = []
        for side in runs:
            per_token = training_flops_per_token(side, method) if side.ok else None
            if per_token and side.tokens_per_sec:
                achieved.append(per_token * side.tokens_per_sec)
        rate = Stat.of(achieved)
        result.rows.append(Row(NAME, f"achieved training FLOP/s, {label}", "FLOP/s", rate, command))
        used = next((side.settings.get("precision") for side in runs if side.ok and side.settings), None)
        used = "bf16" if used == "bf16" or (used is None and ctx.precision == "bf16") else "fp32"
        for precision, peak in peaks.items():
            if not (peak.median and rate.n):
                continue
            fraction = Stat.of([value / peak.median for value in rate.values])
            trained_in = precision == used
            result.rows.append(
                Row(
                    NAME,
                    f"fraction of {precision} matmul peak, {label}"
                    + (" (its training precision)" if trained_in else ""),
                    "fraction",
                    fraction,
                    command,
                    target=">= 0.5" if trained_in else "",
                    status=check_target(fraction.median, minimum=0.5) if trained_in else "",
                )
            )
        result.details[label] = {"method": method, "flops_per_sec": achieved, "precision": used}
    result.notes.append(
        "FLOPs per real token: full 6·N; LoRA 4·N_base + 6·N_adapter (N: base parameters in matmuls, tied "
        "LM head included; attention scores and norms left out). Pads are not counted as useful work."
    )
    result.notes.append(
        "matmul peaks: "
        + json.dumps({"size": preset.matmul_size, "precisions": list(peaks)})
        + "; each run's fraction is also given against the peak of the other precision"
    )
    return result
