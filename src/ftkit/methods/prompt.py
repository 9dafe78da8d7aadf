"""Prompt tuning: trained soft-prompt embeddings prepended to the input (Lester et al., 2021).

Cached decoding drifts for prompt-tuned models, so ftkit decodes them by full forward passes without a KV cache.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftkit.methods.base import Method, MethodOptions
from ftkit.methods.lora import task_type


class PromptOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, ge=1, le=512, description="Soft-prompt length in tokens.")
    init_text: str | None = Field(
        None,
        min_length=1,
        description="Start the soft prompt from this text's token embeddings (repeated to fill); random if unset.",
    )


class PromptMethod(Method):
    name = "prompt"
    description = "Trained soft-prompt embeddings before the input; the fewest parameters, cannot merge."
    options_model = PromptOptions
    mergeable = False
    typical_trainable = "<0.1%"
    default_learning_rate = 3e-2
    generation_use_cache = False
    padding_free_inexact_reason = (
        "prompt tuning drops position_ids (peft), which mark where each sequence starts"
    )

    def prepare(self, model: Any, options: PromptOptions, task: str) -> Any:
        import torch
        from peft import PromptTuningConfig, get_peft_model

        config = PromptTuningConfig(
            task_type=task_type(task),
            num_virtual_tokens=options.num_virtual_tokens,
            prompt_tuning_init="RANDOM",
        )
        peft_model = get_peft_model(model, config)
        if options.init_text:
            if self.tokenizer is None:
                from ftkit.errors import MethodError

                raise MethodError("prompt tuning's init_text needs the run's tokenizer, which was not given")
            ids = self.tokenizer(options.init_text, add_special_tokens=False)["input_ids"]
            repeats = -(-options.num_virtual_tokens // len(ids))
            ids = (ids * repeats)[: options.num_virtual_tokens]
            embeddings = model.get_input_embeddings()
            with torch.no_grad():
                init = embeddings(torch.tensor(ids, device=embeddings.weight.device)).detach().clone()
                encoder = peft_model.prompt_encoder[peft_model.active_adapter]
                encoder.embedding.weight.copy_(init.to(encoder.embedding.weight.dtype))
        return peft_model
