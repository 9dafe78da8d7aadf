"""IA3: learned vectors that rescale keys, values and feed-forward activations (Liu et al., 2022)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ftkit.methods.base import Method, MethodOptions
from ftkit.methods.lora import task_type


class Ia3Options(MethodOptions):
    target_modules: list[str] | None = Field(
        None,
        description="Modules whose activations are rescaled; default per architecture (Llama: k_proj, v_proj, "
        "down_proj).",
    )
    feedforward_modules: list[str] | None = Field(
        None,
        description="Which of target_modules are feed-forward (scaled on their input); default per architecture "
        "(Llama: down_proj).",
    )

    @model_validator(mode="after")
    def _feedforward_subset(self) -> Ia3Options:
        if self.feedforward_modules is not None:
            if self.target_modules is None:
                raise ValueError("feedforward_modules needs target_modules too (it must be a subset of them)")
            extra = sorted(set(self.feedforward_modules) - set(self.target_modules))
            if extra:
                raise ValueError(
                    f"feedforward_modules must be a subset of target_modules; not there: {extra}"
                )
        return self


class Ia3Method(Method):
    name = "ia3"
    description = "Learned scaling vectors on keys, values and feed-forward; very few parameters, mergeable."
    options_model = Ia3Options
    mergeable = True
    typical_trainable = "<0.1%"
    default_learning_rate = 3e-3
    padding_free_exact = True

    def prepare(self, model: Any, options: Ia3Options, task: str) -> Any:
        from peft import IA3Config, get_peft_model

        extra: dict[str, Any] = {}
        if options.target_modules is not None:
            extra["target_modules"] = options.target_modules
            extra["feedforward_modules"] = options.feedforward_modules or []
        try:
            config = IA3Config(task_type=task_type(task), **extra)
            return get_peft_model(model, config)
        except ValueError as error:
            from ftkit.errors import MethodError

            raise MethodError(
                f"ia3 cannot adapt this model: {error}",
                hint="set method.target_modules and method.feedforward_modules to module names of this model",
            ) from None

    def merge(self, model: Any) -> Any:
        return model.merge_and_unload()
