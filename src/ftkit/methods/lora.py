"""LoRA: low-rank adapters beside the frozen base weights (Hu et al., 2021)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ftkit.methods.base import Method, MethodOptions


class LoraOptions(MethodOptions):
    r: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="Adapter rank; auto: 8 under 1,000 training rows, 16 under 10,000, else 32."
    )
    alpha: float | None = Field(None, gt=0, description="Scaling numerator; defaults to 2 × r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules to adapt: all-linear, or a list of module names."
    )
    rslora: bool = Field(False, description="Rank-stabilised scaling alpha/sqrt(r) instead of alpha/r.")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train.")

    @field_validator("target_modules")
    @classmethod
    def _no_adapter_on_the_lm_head(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and "lm_head" in value:
            raise ValueError(
                "without lm_head: TRL's trainers score tokens from lm_head.weight directly, so an adapter there "
                "would never train (train the head with method: full or freeze)"
            )
        return value


def task_type(task: str) -> str:
    return "SEQ_CLS" if task == "classification" else "CAUSAL_LM"


def lora_config(options: LoraOptions, task: str, **extra: Any):
    """The peft LoraConfig for these options (shared by lora, dora and qlora)."""
    from peft import LoraConfig

    rank = 16 if options.r == "auto" else options.r  # the runner resolves auto first (auto_rules.lora_rank)
    return LoraConfig(
        r=rank,
        lora_alpha=options.alpha if options.alpha is not None else 2 * rank,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        use_rslora=options.rslora,
        bias=options.bias,
        task_type=task_type(task),
        **extra,
    )


class LoraMethod(Method):
    name = "lora"
    description = "Low-rank adapters on frozen weights; small, fast, mergeable."
    options_model = LoraOptions
    mergeable = True
    typical_trainable = "0.5-4%"
    default_learning_rate = 2e-4
    padding_free_exact = True

    def prepare(self, model: Any, options: LoraOptions, task: str) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, lora_config(options, task))

    def merge(self, model: Any) -> Any:
        return model.merge_and_unload()
