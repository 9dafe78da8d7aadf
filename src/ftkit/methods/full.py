"""Full fine-tuning: every weight of the model trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.methods.base import Method, MethodOptions


class FullOptions(MethodOptions):
    """Full fine-tuning has no options of its own."""


class FullMethod(Method):
    name = "full"
    description = "Train all weights; the most capacity and the most memory."
    options_model = FullOptions
    mergeable = False
    is_adapter = False
    typical_trainable = "100%"
    default_learning_rate = 2e-5

    def prepare(self, model: Any, options: FullOptions, task: str) -> Any:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def load_trained(self, base_model: Any, output_dir: Path, model_class: Any = None) -> Any:
        model_class = model_class or type(base_model)
        return model_class.from_pretrained(str(output_dir))
