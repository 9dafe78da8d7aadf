"""DoRA: weight-decomposed LoRA — magnitude and direction trained separately (Liu et al., 2024)."""

from __future__ import annotations

from typing import Any

from ftkit.methods.lora import LoraMethod, LoraOptions, lora_config


class DoraOptions(LoraOptions):
    """The LoRA options; DoRA adds a trained magnitude vector per adapted weight."""


class DoraMethod(LoraMethod):
    name = "dora"
    description = "LoRA with a learned magnitude per weight column; closer to full tuning, a bit slower."
    options_model = DoraOptions
    mergeable = True
    typical_trainable = "0.5-4%"
    default_learning_rate = 2e-4

    def prepare(self, model: Any, options: DoraOptions, task: str) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, lora_config(options, task, use_dora=True))
