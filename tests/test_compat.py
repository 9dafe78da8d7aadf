"""The one place that knows transformers' checkpointing rename: the name is a real TrainingArguments field, and
turning checkpointing off works on a model where it was on."""

from __future__ import annotations

from ftkit.compat import checkpointing_name, disable_checkpointing


def test_the_checkpointing_name_is_a_training_argument():
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="unused", report_to="none", **{checkpointing_name(): True})
    assert getattr(args, checkpointing_name()) is True


def test_checkpointing_turned_on_is_turned_off():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = LlamaForCausalLM(config)
    getattr(model, f"{checkpointing_name()}_enable")()
    assert model.is_gradient_checkpointing
    disable_checkpointing(model)
    assert not model.is_gradient_checkpointing
    disable_checkpointing(model)  # already off: nothing to do
    assert not model.is_gradient_checkpointing
