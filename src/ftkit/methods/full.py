"""Full fine-tuning: every weight of the model trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import model_validator

from ftkit.methods.base import Method, MethodOptions

QUANTIZATION_KEYS = (
    "load_in_4bit",
    "load_in_8bit",
    "quantize",
    "quantization",
    "bits",
    "quant_type",
    "double_quant",
)


def reject_quantized_base(method: str, data: Any) -> Any:
    """Full-weight methods cannot train a 4-bit base: say so, instead of a generic unknown-key error."""
    if isinstance(data, dict):
        for key in QUANTIZATION_KEYS:
            if key in data:
                raise ValueError(
                    f"`{key}`: method `{method}` trains the base weights themselves, which cannot train while "
                    "quantized; use method `qlora` (LoRA adapters on a 4-bit base), or drop the key to train "
                    "in full precision"
                )
    return data


class FullOptions(MethodOptions):
    """Full fine-tuning has no options of its own."""

    @model_validator(mode="before")
    @classmethod
    def _not_quantized(cls, data: Any) -> Any:
        return reject_quantized_base("full", data)


class FullMethod(Method):
    name = "full"
    description = "Train all weights; the most capacity and the most memory."
    options_model = FullOptions
    mergeable = False
    is_adapter = False
    typical_trainable = "100%"
    default_learning_rate = 2e-5
    padding_free_exact = True

    def prepare(self, model: Any, options: FullOptions, task: str) -> Any:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def load_trained(self, base_model: Any, output_dir: Path, model_class: Any = None) -> Any:
        model_class = model_class or type(base_model)
        return model_class.from_pretrained(str(output_dir))
