"""Differences between the library versions ftkit supports, decided in one place.

Imported by `methods` and `train` alike, so it imports nothing from ftkit; heavy libraries load inside functions.
"""

from __future__ import annotations

from typing import Any


def checkpointing_name() -> str:
    """`activation_checkpointing` where transformers has it (5.x renamed gradient checkpointing), else
    `gradient_checkpointing`: the TrainingArguments field and the stem of the model methods (`is_<name>`,
    `<name>_disable`)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def disable_checkpointing(model: Any) -> None:
    """Turn gradient (activation) checkpointing off on a transformers model if it is on."""
    name = checkpointing_name()
    if getattr(model, f"is_{name}", False):
        getattr(model, f"{name}_disable")()
