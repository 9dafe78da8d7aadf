"""Choosing device, precision and gradient checkpointing from the hardware, explicitly.

TRL's SFTConfig defaults to bf16=True and gradient_checkpointing=True; on a CPU that either errors or silently
changes numerics, so ftkit always sets both itself.
"""

from __future__ import annotations

import os
import resource
import sys
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

    def decided(self) -> dict[str, Any]:
        """The training settings this plan fixed, under their recipe keys (for the resolved recipe)."""
        return {
            "precision": self.precision,
            "gradient_checkpointing": self.gradient_checkpointing,
            "device": self.device,
            "padding_free": self.padding_free,
        }


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
    from ftkit.train.precision import native_bf16

    name = platform.processor() or platform.machine()
    return Hardware("cpu", name, 1, os.cpu_count() or 1, bool(native_bf16()))


def free_memory(device: str) -> tuple[int, str]:
    """(bytes free for a new training process, where the figure comes from): on CUDA the device's free memory
    (torch.cuda.mem_get_info), elsewhere MemAvailable from /proc/meminfo, else psutil's or sysconf's figure."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free), "torch.cuda.mem_get_info (GPU 0)"
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available), "psutil.virtual_memory().available"
    except ImportError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")), "sysconf SC_AVPHYS_PAGES"
    except (ValueError, OSError, AttributeError):
        return 0, "unknown (no /proc/meminfo, psutil or sysconf)"


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory on CUDA, else the process's peak resident set size."""
    if device == "cuda":
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def plan_training(
    hardware: Hardware,
    training: dict[str, Any],
    parameter_count: int,
    task: str,
    method: Any = None,
    model_config: Any = None,
) -> TrainingPlan:
    """Resolve `auto` device, precision, gradient checkpointing and padding-free for this machine and model.

    `method` (the ftkit Method) and `model_config` (the loaded model's config) decide whether padding-free batches
    are exact; without them `padding_free: auto` stays off.
    """
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
        elif chosen_device == "cpu":
            from ftkit.train.precision import cpu_precision_choice

            # bf16 is confirmed (or dropped) by a numerics check in the runner, which adds its own note
            chosen_precision, reason = cpu_precision_choice(hardware.bf16_supported, parameter_count)
            if chosen_precision == "fp32":
                notes.append(reason)
        else:
            chosen_precision = "fp32"
            notes.append(f"precision: fp32 on {chosen_device}")
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
    padding_free = plan_padding_free(training["padding_free"], task, method, model_config, notes)
    return TrainingPlan(chosen_device, chosen_precision, checkpointing, bool(padding_free), notes)


# Padding-free batches (TRL flattens a batch into one row and restarts position_ids at each sequence) are exact only
# where the model builds a block-diagonal mask from those position_ids. transformers' masking utils do so when no KV
# cache is passed, for models whose forward calls create_causal_mask / create_sliding_window_causal_mask. Proven
# (per-row logits and loss equal to the padded batch's) for these architectures and attention implementations by
# tests/train/test_padding_free.py; anything else stays off under `auto`. While training, sdpa models without a
# sliding window attend per sequence instead of through that dense mask (train/packed_attention.py: the same
# boundaries from position_ids, proven equal to padded batches, logits and gradients, in test_packed_attention.py).
PADDING_FREE_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "gemma")
PADDING_FREE_ATTENTION = ("sdpa", "eager")


def padding_free_exactness(method: Any, model_config: Any) -> tuple[bool, bool, str]:
    """(exact, known_inexact, reason): whether padding-free batches give this method, architecture and attention
    implementation exactly the padded batch's logits. `known_inexact` marks a proven failure (the method's own),
    as opposed to a combination that is merely unproven; `reason` says which, for the user."""
    if method is None or model_config is None:
        return False, False, "the method or model is not known to the planner"
    if not getattr(method, "padding_free_exact", False):
        why = getattr(method, "padding_free_inexact_reason", "")
        return False, bool(why), why or f"not proven exact for method `{method.name}`"
    if not packed_masks_supported():
        from importlib.metadata import version

        found = version("transformers")
        return False, False, f"transformers {found} builds no per-sequence masks (needs >= 5)"
    model_type = getattr(model_config, "model_type", None)
    if model_type not in PADDING_FREE_ARCHITECTURES:
        return False, False, f"not proven exact for architecture `{model_type}`"
    attention = getattr(model_config, "_attn_implementation", None)
    if attention not in PADDING_FREE_ATTENTION:
        return False, False, f"not proven exact for attention implementation `{attention}`"
    return True, False, f"exact for {method.name} on {model_type} with {attention} attention"


def plan_padding_free(requested: Any, task: str, method: Any, model_config: Any, notes: list[str]) -> bool:
    """Resolve training.padding_free (true | false | auto), adding a note that says which and why."""
    if requested is False:
        return False
    if task != "causal-lm":
        if requested is True:
            raise UsageError(
                "training.padding_free applies to causal-lm only", hint="remove it for classification"
            )
        return False
    exact, known_inexact, reason = padding_free_exactness(method, model_config)
    if requested == "auto":
        if exact:
            notes.append(f"padding-free batches on: {reason} (sequences cannot attend to each other)")
        elif known_inexact:
            notes.append(f"padding-free batches off: {reason}, so sequences would attend to each other")
        else:
            notes.append(f"padding-free batches off: {reason}; padded batches instead")
        return exact
    # An explicit `true` that is proven wrong is refused, like fp16 on CPU: training would silently mix sequences.
    if known_inexact:
        raise UsageError(
            f"training.padding_free: true, but padding-free batches are not exact here: {reason}, so sequences in "
            "a batch would attend to each other",
            hint="set training.padding_free: auto (or false), or choose another method",
        )
    if not exact:
        notes.append(f"padding-free batches on as asked; {reason}")
    return True


def packed_masks_supported() -> bool:
    """transformers >= 5 builds block-diagonal attention from position_ids when no KV cache is used (masking_utils'
    find_packed_sequence_indices); older versions attend across the flattened sequences."""
    from importlib.metadata import version

    return int(version("transformers").split(".")[0]) >= 5
