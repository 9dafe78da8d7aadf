"""Prefix tuning: trained key/value vectors prepended at every layer (Li & Liang, 2021).

Two pitfalls handled here: peft's prefix key/values do not survive gradient checkpointing (the re-computed forward
sees no prefix), so checkpointing is turned off; and `PeftModel.generate()` silently ignores the trained prefix, so
ftkit decodes prefix-tuned models by full forward passes without a KV cache (see `generation_use_cache`).

The prefix starts from the model's own key/values on a real text (`init: auto`), as Li & Liang recommend: peft's
default, random N(0, 1) vectors, sit far from any activation the model produces, so the untrained prefix makes
the model worse than the base model and 20 steps did not recover it (eval loss 3.11 -> 4.9 on SmolLM2-135M).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ftkit.compat import disable_checkpointing
from ftkit.methods.base import Method, MethodOptions, TrainingAdjustments
from ftkit.methods.lora import task_type

DEFAULT_INIT_TEXT = "The following is a conversation between a user and a helpful assistant."


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
    init: Literal["auto", "text", "random"] = Field(
        "auto",
        description="How the prefix starts: text (the model's own key/values on init_text), random (peft's "
        "N(0, 1)); auto: text, or random with prefix_projection (its MLP cannot be inverted).",
    )
    init_text: str | None = Field(
        None,
        min_length=1,
        description=f"The text for init: text (its tokens repeated or cut to num_virtual_tokens); default "
        f"{DEFAULT_INIT_TEXT!r}.",
    )

    @model_validator(mode="after")
    def _init_fits(self) -> PrefixOptions:
        if self.init == "text" and self.prefix_projection:
            raise ValueError(
                "init: text copies key/values into the prefix, but prefix_projection trains it through an MLP "
                "that cannot be inverted; use init: random (or auto) with prefix_projection"
            )
        if self.init_text is not None and (
            self.init == "random" or (self.init == "auto" and self.prefix_projection)
        ):
            raise ValueError("init_text is unused with a random prefix; drop it or set init: text")
        return self

    @property
    def text_init(self) -> bool:
        """Whether the prefix starts from the model's key/values on init_text."""
        return self.init == "text" or (self.init == "auto" and not self.prefix_projection)


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
        if options.text_init:
            text = options.init_text or DEFAULT_INIT_TEXT
            adjustments.notes.append(
                f"prefix tuning: the prefix starts from the model's key/values on {text!r}"
            )
        else:
            adjustments.notes.append("prefix tuning: the prefix starts random (peft's N(0, 1) init)")
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

        disable_checkpointing(model)
        config = PrefixTuningConfig(
            task_type=task_type(task),
            num_virtual_tokens=options.num_virtual_tokens,
            prefix_projection=options.prefix_projection,
            **({"encoder_hidden_size": options.encoder_hidden_size} if options.encoder_hidden_size else {}),
        )
        initial = None
        if options.text_init:
            if self.tokenizer is None:
                from ftkit.errors import MethodError

                raise MethodError(
                    "prefix tuning's text init needs the run's tokenizer, which was not given",
                    hint="set method.init: random, or give the method its tokenizer (Method.tokenizer)",
                )
            text = options.init_text or DEFAULT_INIT_TEXT
            initial = text_key_values(model, self.tokenizer, text, options.num_virtual_tokens)
        peft_model = get_peft_model(model, config)
        if initial is not None:
            copy_into_prefix(peft_model, initial)
        return peft_model


def text_key_values(model: Any, tokenizer: Any, text: str, length: int) -> Any:
    """The model's key/values on `text` (its tokens repeated or cut to `length`), as one [length, layers * 2 *
    kv_heads * head_dim] tensor in peft's PrefixEncoder layout: per token, layer by layer, the keys then the
    values, each [kv_heads, head_dim] flattened. Keys carry their rotary positions 0..length-1, so the untrained
    prefix acts exactly as if `text` preceded every input."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        from ftkit.errors import MethodError

        raise MethodError(f"prefix tuning: init_text {text!r} has no tokens", hint="set method.init_text")
    ids = (ids * -(-length // len(ids)))[:length]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
    finally:
        model.train(was_training)
    cache = output["cache"] if "cache" in output else output["past_key_values"]
    if hasattr(cache, "layers"):
        pairs = [(layer.keys, layer.values) for layer in cache.layers]
    else:  # legacy tuple of (key, value) per layer
        pairs = [(key, value) for key, value, *_ in cache]
    columns = []
    for key, value in pairs:  # each [1, kv_heads, length, head_dim]
        for states in (key, value):
            columns.append(states[0].permute(1, 0, 2).reshape(states.shape[2], -1))
    return torch.cat(columns, dim=1)


def copy_into_prefix(peft_model: Any, initial: Any) -> None:
    """Copy [num_virtual_tokens, layers * 2 * kv_dim] key/values into peft's prefix embedding."""
    import torch

    weight = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight
    if tuple(initial.shape) != tuple(weight.shape):
        from ftkit.errors import MethodError

        raise MethodError(
            f"prefix tuning: this model's key/values ({tuple(initial.shape)}) do not fit peft's prefix "
            f"({tuple(weight.shape)}), so the prefix cannot start from text",
            hint="set method.init: random",
        )
    with torch.no_grad():
        weight.copy_(initial.to(device=weight.device, dtype=weight.dtype))
