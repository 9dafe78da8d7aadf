"""Freeze tuning: train only the last N transformer layers and/or named modules; everything else stays frozen.

The result is a whole model (saved like `full`), so it needs no adapter library to load.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ftkit.methods.base import MethodOptions
from ftkit.methods.full import FullMethod, reject_quantized_base

CLASSIFIER_HEADS = ("score", "classifier")


class FreezeOptions(MethodOptions):
    layers: int = Field(2, ge=0, description="Train the last N transformer layers (0: none).")
    modules: list[str] = Field(
        default_factory=list,
        description="Also train these modules, by name or name suffix (e.g. lm_head, model.norm).",
    )

    @model_validator(mode="before")
    @classmethod
    def _not_quantized(cls, data: Any) -> Any:
        return reject_quantized_base("freeze", data)

    @model_validator(mode="after")
    def _something_trains(self) -> FreezeOptions:
        if self.layers == 0 and not self.modules:
            raise ValueError("nothing would train: set layers >= 1 and/or list modules")
        return self


def transformer_layers(model: Any) -> tuple[str, Any]:
    """(qualified name, ModuleList) of the model's transformer blocks: the longest ModuleList of the model."""
    import torch

    best: tuple[str, Any] | None = None
    expected = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            if expected is not None and len(module) == expected:
                return name, module
            if best is None or len(module) > len(best[1]):
                best = (name, module)
    if best is None:
        from ftkit.errors import MethodError

        raise MethodError(
            "freeze: this model has no list of transformer layers to unfreeze",
            hint="set method.layers: 0 and name the modules to train with method.modules",
        )
    return best


class FreezeMethod(FullMethod):
    name = "freeze"
    description = "Train only the last N layers and/or named modules; full weights saved, no adapter."
    options_model = FreezeOptions
    mergeable = False
    is_adapter = False
    typical_trainable = "5-30%"
    default_learning_rate = 5e-5

    def prepare(self, model: Any, options: FreezeOptions, task: str) -> Any:
        from ftkit.errors import MethodError

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if options.layers:
            name, layers = transformer_layers(model)
            if options.layers > len(layers):
                raise MethodError(
                    f"freeze: layers={options.layers} but the model has only {len(layers)} layers ({name})",
                    hint=f"set method.layers to at most {len(layers)}, or use method `full`",
                )
            for layer in list(layers)[-options.layers :]:
                layer.requires_grad_(True)
        wanted = list(options.modules)
        if task == "classification":
            wanted += [head for head in CLASSIFIER_HEADS if hasattr(model, head)]
        modules = dict(model.named_modules())
        for wanted_name in wanted:
            matches = [m for n, m in modules.items() if n == wanted_name or n.endswith("." + wanted_name)]
            if not matches:
                from ftkit.suggest import did_you_mean

                close = did_you_mean(wanted_name, modules, n=3)
                raise MethodError(
                    f"freeze: no module named `{wanted_name}` in this model",
                    hint=f"closest names: {', '.join(close)}"
                    if close
                    else "list names with model.named_modules()",
                )
            for module in matches:
                module.requires_grad_(True)
        return model
