"""Choosing device, precision and gradient checkpointing from the hardware, explicitly.

TRL's SFTConfig defaults to bf16=True and gradient_checkpointing=True; on a CPU that either errors or silently
changes numerics, so ftkit always sets both itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from ftkit.errors import UsageError


@dataclass
class Hardware:
    device: str  # cpu | cuda | mps
    device_name: str
    device_count: int
    cpu_count: int
    bf16_supported: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingPlan:
    """The hardware-dependent settings actually used, with the reasons shown to the user."""

    device: str
    precision: str  # fp32 | bf16 | fp16
    gradient_checkpointing: bool
    padding_free: bool
    notes: list[str]


def detect_hardware() -> Hardware:
    import platform

    import torch

    if torch.cuda.is_available():
        return Hardware(
            "cuda",
            torch.cuda.get_device_name(0),
            torch.cuda.device_count(),
            os.cpu_count() or 1,
            torch.cuda.is_bf16_supported(),
        )
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return Hardware("mps", "Apple MPS", 1, os.cpu_count() or 1, False)
    return Hardware("cpu", platform.processor() or platform.machine(), 1, os.cpu_count() or 1, True)


def plan_training(
    hardware: Hardware, training: dict[str, Any], parameter_count: int, task: str
) -> TrainingPlan:
    """Resolve `auto` device, precision, gradient checkpointing and padding-free for this machine and model."""
    notes: list[str] = []
    device = training["device"]
    chosen_device = hardware.device if device == "auto" else device
    if chosen_device != "cpu" and chosen_device != hardware.device:
        raise UsageError(
            f"training.device is `{device}` but this machine has no {device} device (found {hardware.device})",
            hint="set training.device: auto (or cpu)",
        )
    precision = training["precision"]
    if precision == "auto":
        if chosen_device == "cuda":
            chosen_precision = "bf16" if hardware.bf16_supported else "fp16"
        else:
            chosen_precision = "fp32"
            notes.append(
                "precision: fp32 on CPU (training.precision: bf16 is ~2x faster on matmuls; check numerics)"
            )
    else:
        chosen_precision = precision
        if chosen_precision == "fp16" and chosen_device == "cpu":
            raise UsageError(
                "fp16 mixed precision needs a GPU", hint="use training.precision: bf16 or fp32 on CPU"
            )
    if training["gradient_checkpointing"] == "auto":
        checkpointing = chosen_device == "cuda" and parameter_count > 1_000_000_000
    else:
        checkpointing = bool(training["gradient_checkpointing"])
    padding_free = training["padding_free"]
    if padding_free == "auto":
        padding_free = task == "causal-lm" and packed_masks_supported()
    elif padding_free and task != "causal-lm":
        raise UsageError(
            "training.padding_free applies to causal-lm only", hint="remove it for classification"
        )
    return TrainingPlan(chosen_device, chosen_precision, checkpointing, bool(padding_free), notes)


def packed_masks_supported() -> bool:
    """transformers >= 5 builds block-diagonal attention from position_ids when no KV cache is used, which makes
    padding-free batches exact with any attention implementation (checked in tests/train)."""
    from importlib.metadata import version

    return int(version("transformers").split(".")[0]) >= 5
