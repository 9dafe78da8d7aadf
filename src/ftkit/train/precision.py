"""`training.precision: auto` on a CPU: bf16 where the CPU computes bf16 natively, confirmed against fp32 first.

CPUs with AMX or AVX-512 BF16 (x86) or the BF16 extension (Arm) run bf16 matmuls natively; on SmolLM2-135M LoRA
that trains faster than fp32 (`python -m benchmarks --only defaults`, row "ftkit bf16 / ftkit fp32"). Without
those features bf16 is emulated and slower, and on very small models the casts cost more than the matmuls save
(`python -m benchmarks --only precision`), so `auto` stays fp32 there. Before training in bf16, the loss of the
first training batches is computed in fp32 and under bf16 autocast; if they differ by more than `TOLERANCE`
(relative), the run trains in fp32 and says why.

oneDNN's own check (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) is true on any AVX-512 CPU, where bf16 is
emulated, so the CPU's feature flags decide here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.data.render import IGNORE_INDEX

NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})  # x86 flags; `bf16` in Arm's Features
MIN_PARAMETERS = 1_000_000  # below this, bf16 autocast measured slower than fp32 on an AMX CPU
TOLERANCE = 1e-2  # relative difference allowed between the fp32 and bf16 loss of the first batches
CHECK_BATCHES = 2


@dataclass
class Bf16Check:
    """The loss of the first training batches in fp32 and under bf16 autocast."""

    fp32_loss: float
    bf16_loss: float
    rows: int
    tolerance: float

    @property
    def relative_difference(self) -> float:
        if not (math.isfinite(self.fp32_loss) and math.isfinite(self.bf16_loss)):
            return math.inf
        return abs(self.bf16_loss - self.fp32_loss) / max(abs(self.fp32_loss), 1e-12)

    @property
    def passed(self) -> bool:
        return self.relative_difference <= self.tolerance

    def metrics(self) -> dict[str, float]:
        return {
            "precision.fp32_loss": self.fp32_loss,
            "precision.bf16_loss": self.bf16_loss,
            "precision.relative_difference": self.relative_difference,
            "precision.tolerance": self.tolerance,
        }


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags from /proc/cpuinfo text (`flags` on x86, `Features` on Arm); empty elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def native_bf16(flags: set[str] | None = None) -> list[str]:
    """The features that make this CPU compute bf16 natively (empty: none, bf16 would be emulated)."""
    return sorted((cpu_flags() if flags is None else flags) & NATIVE_BF16_FLAGS)


def cpu_precision_choice(bf16_native: bool, parameter_count: int) -> tuple[str, str]:
    """`auto` precision on a CPU before the numerics check: (fp32 | bf16, the reason shown to the user)."""
    if not bf16_native:
        return "fp32", (
            "precision: fp32 (this CPU has no native bf16 — neither AMX nor AVX-512 BF16 — so bf16 would be "
            "emulated and slower)"
        )
    if parameter_count < MIN_PARAMETERS:
        return "fp32", (
            f"precision: fp32 (a {parameter_count:,}-parameter model is too small to gain from bf16 on a CPU: "
            f"the casts cost more than the matmuls save below ~{MIN_PARAMETERS // 1_000_000}M parameters)"
        )
    return "bf16", "precision: bf16 autocast (this CPU computes bf16 natively)"


def _batch(rows: list[dict[str, Any]], pad_id: int, device: Any) -> dict[str, Any]:
    import torch

    width = max(len(row["input_ids"]) for row in rows)
    input_ids = [row["input_ids"] + [pad_id] * (width - len(row["input_ids"])) for row in rows]
    mask = [[1] * len(row["input_ids"]) + [0] * (width - len(row["input_ids"])) for row in rows]
    if isinstance(rows[0]["labels"], list):  # causal LM: a label per token, -100 where no loss
        labels: Any = [row["labels"] + [IGNORE_INDEX] * (width - len(row["labels"])) for row in rows]
    else:  # classification: one class index per row
        labels = [row["labels"] for row in rows]
    return {
        "input_ids": torch.tensor(input_ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def check_bf16(
    model: Any,
    rows: list[dict[str, Any]],
    pad_id: int,
    batch_size: int,
    tolerance: float = TOLERANCE,
    batches: int = CHECK_BATCHES,
) -> Bf16Check:
    """Mean loss of the first `batches` batches of `rows` in fp32 and under bf16 autocast (eval mode, no
    gradients: dropout off, so the two differ by precision alone). Causal-LM rows are scored as evaluation scores
    them (chunked loss over their labelled tokens), so the check holds no full-vocabulary logits."""
    import torch

    used = rows[: max(1, batch_size) * batches]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    fp32, bf16 = [], []
    try:
        if isinstance(used[0]["labels"], list):  # causal LM: the chunked loss, never the full logits
            from ftkit.evaluation.metrics import causal_lm_loss

            for enabled, losses in ((False, fp32), (True, bf16)):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
                    losses.append(causal_lm_loss(model, used, pad_id, device=str(device))["loss"])
            return Bf16Check(fp32[0], bf16[0], len(used), tolerance)
        with torch.no_grad():
            for start in range(0, len(used), max(1, batch_size)):
                batch = _batch(used[start : start + max(1, batch_size)], pad_id, device)
                with torch.autocast(device.type, enabled=False):
                    fp32.append(float(model(**batch).loss))
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    bf16.append(float(model(**batch).loss))
    finally:
        model.train(was_training)
    return Bf16Check(sum(fp32) / len(fp32), sum(bf16) / len(bf16), len(used), tolerance)


def confirm_auto_bf16(
    plan: Any,
    requested: str,
    model: Any,
    rows: list[dict[str, Any]],
    pad_id: int | None,
    batch_size: int,
    adapter: bool,
    tolerance: float = TOLERANCE,
) -> dict[str, float]:
    """When `auto` chose bf16 (a CPU or GPU that computes bf16 natively), check the loss against fp32 and keep bf16
    or fall back to fp32.

    Updates `plan` (precision and notes) and returns the check's metrics (empty when nothing was checked). On
    success an adapter method's frozen base is stored in bf16, as with `training.precision: bf16`, so that the
    resolved recipe (which says bf16) reloads and re-runs the very same model.
    """
    if requested != "auto" or plan.device not in ("cpu", "cuda") or plan.precision != "bf16":
        return {}
    hardware = "this GPU" if plan.device == "cuda" else "this CPU"
    quantized = getattr(model, "hf_quantizer", None) is not None
    if plan.device == "cuda" and (not rows or quantized):  # GPUs train these in bf16 as they always have
        plan.notes.append(
            "precision: bf16 autocast (this GPU computes bf16 natively; no fp32 check for this run)"
        )
        return {}
    if not rows:  # bf16 is only used once checked: nothing to check it on (preference pairs) keeps fp32
        plan.precision = "fp32"
        plan.notes.append(
            "precision: fp32 (auto's bf16 is confirmed on SFT batches, and this run has none; set precision: bf16 "
            "to train in bf16)"
        )
        return {}
    if quantized:  # a 4-bit base on a CPU computes in its own compute_dtype
        plan.precision = "fp32"
        plan.notes.append(
            "precision: fp32 (a quantized base on a CPU computes in the method's compute_dtype)"
        )
        return {}
    try:
        check = check_bf16(model, rows, pad_id if pad_id is not None else 0, batch_size, tolerance)
    except Exception as error:  # a model whose ops refuse bf16 on this CPU trains in fp32
        plan.precision = "fp32"
        plan.notes.append(
            f"precision: fp32 (auto would use bf16 on {hardware}, but the bf16 check could not run: "
            f"{type(error).__name__}: {error}"[:300]
            + ")"
        )
        return {}
    figures = (
        f"loss of the first {check.rows} training rows {check.fp32_loss:.4f} in fp32, {check.bf16_loss:.4f} "
        f"in bf16: relative difference {check.relative_difference:.2e}, tolerance {tolerance:g}"
    )
    if not check.passed:
        plan.precision = "fp32"
        plan.notes.append(
            f"precision: fp32 — {hardware} computes bf16 natively, but bf16 changes this model's loss too much "
            f"({figures}); set training.precision: bf16 to use it anyway"
        )
        return check.metrics()
    if adapter:
        frozen_base_to_bf16(model)
    plan.notes.append(f"precision: bf16 autocast — {hardware} computes bf16 natively and {figures}")
    return check.metrics()


def frozen_base_to_bf16(model: Any) -> None:
    """Store floating-point parameters in bf16, as `from_pretrained(dtype=bfloat16)` does: buffers (rotary
    frequencies) and quantized weights stay as they are."""
    import torch

    for parameter in model.parameters():
        if parameter.is_floating_point() and parameter.dtype != torch.bfloat16:
            parameter.data = parameter.data.to(torch.bfloat16)
