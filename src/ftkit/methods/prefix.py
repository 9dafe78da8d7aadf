"""Prefix tuning: trained key/value vectors prepended at every layer (Li & Liang, 2021).

Two pitfalls handled here: peft's prefix key/values do not survive gradient checkpointing (the re-computed forward
sees no prefix), so checkpointing is turned off; and `PeftModel.generate()` silently ignores the trained prefix, so
ftkit decodes prefix-tuned models by full forward passes without a KV cache (see `generation_use_cache`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftkit.methods.base import Method, MethodOptions, TrainingAdjustments
from ftkit.methods.lora import task_type


class PrefixOptions(MethodOptions):
    num_virtual_tokens: int = Field(
        20, ge=1, le=512, description="Prefix length: key/value vectors per layer."
    )
    prefix_projection: bool = Field(
        False, description="Train the prefix through a 2-layer MLP (more parameters, often steadier)."
    )
    encoder_hidden_size: int | None = Field(
        None, ge=1, description="Hidden size of that MLP; defaults to the model's hidden size."
    )


class PrefixMethod(Method):
    name = "prefix"
    description = "Trained key/value prefix at every layer; tiny, cannot merge, decodes without a KV cache."
    options_model = PrefixOptions
    mergeable = False
    typical_trainable = "0.1-1%"
    default_learning_rate = 1e-2
    generation_use_cache = False
    padding_free_inexact_reason = (
        "prefix tuning passes its prefix as a KV cache, "
        "and transformers masks sequences apart only without one"
    )

    def adjust_training(self, options: PrefixOptions, training: dict[str, Any]) -> TrainingAdjustments:
        adjustments = TrainingAdjustments(overrides={"gradient_checkpointing": False})
        if training.get("gradient_checkpointing") is True:
            adjustments.notes.append(
                "prefix tuning: gradient checkpointing turned off (the recipe asked for it, but peft's prefix "
                "key/values are lost when checkpointed layers are re-computed)"
            )
        else:
            adjustments.notes.append(
                "prefix tuning: gradient checkpointing is off (it drops the prefix key/values on re-computation)"
            )
        return adjustments

    def prepare(self, model: Any, options: PrefixOptions, task: str) -> Any:
        from peft import PrefixTuningConfig, get_peft_model

        # transformers 5 renamed gradient checkpointing to activation checkpointing; use whichever exists
        if hasattr(type(model), "is_activation_checkpointing"):
            if model.is_activation_checkpointing:
                model.activation_checkpointing_disable()
        elif getattr(model, "is_gradient_checkpointing", False):
            model.gradient_checkpointing_disable()
        config = PrefixTuningConfig(
            task_type=task_type(task),
            num_virtual_tokens=options.num_virtual_tokens,
            prefix_projection=options.prefix_projection,
            **({"encoder_hidden_size": options.encoder_hidden_size} if options.encoder_hidden_size else {}),
        )
        return get_peft_model(model, config)
