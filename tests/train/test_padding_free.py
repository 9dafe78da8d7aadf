"""Padding-free batches are exact where `training.padding_free: auto` turns them on, and only there.

For every method (applied through its own `Method.prepare`, as `ftkit run` does) and for sdpa and eager attention,
the same rows go through the model twice, batched the way TRL's SFTTrainer batches them at training time: padded
(right-padded, attention mask) and padding-free (one flattened row, position_ids restarting at each sequence,
cu_seq_lens and seq_idx, use_cache=False). Exact means per-row logits and the batch loss agree within 1e-5; the
planner's `auto` choice must equal that measured exactness.
"""

from __future__ import annotations

import pytest

from ftkit.errors import UsageError
from ftkit.methods.catalog import BUILTIN_METHODS, get_method
from ftkit.train.hardware import PADDING_FREE_ARCHITECTURES, Hardware, plan_training
from tests.conftest import chat_rows

TOLERANCE = 1e-5
CPU = Hardware("cpu", "test", 1, 1, True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batches(tokenizer) -> tuple[list[int], dict, dict]:
    """(row lengths, padded batch, padding-free batch) built by TRL's own collator, as SFTTrainer uses it."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    texts = [tokenizer.apply_chat_template(row["messages"], tokenize=False) for row in chat_rows(4, seed=3)]
    texts[1] += " and the owl is purple"  # rows of different lengths, so the padded batch has pads
    texts[3] = texts[3][:20]
    rows = [{"input_ids": tokenizer(text)["input_ids"]} for text in texts]
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(rows)
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(rows)
    assert "attention_mask" not in flat and flat["input_ids"].shape[0] == 1
    for batch in (padded, flat):
        batch["use_cache"] = False  # SFTTrainer.compute_loss passes it
    return [len(row["input_ids"]) for row in rows], padded, flat


def measure(model, lengths: list[int], padded: dict, flat: dict) -> tuple[float, float]:
    """(largest per-row logit difference, loss difference) between the padded and the padding-free batch.

    Eval mode switches dropout off; gradients stay enabled as in training (bitsandbytes runs another kernel
    without them)."""
    import torch

    model.eval()
    with torch.enable_grad():
        a = model(**padded)
        b = model(**flat)
    worst, start = 0.0, 0
    for row, length in enumerate(lengths):
        row_a = a.logits[row, :length]
        row_b = b.logits[0, start : start + length]
        worst = max(worst, (row_a - row_b).abs().max().item())
        start += length
    return worst, abs(a.loss.item() - b.loss.item())


def auto_choice(method, config, task: str = "causal-lm", requested="auto"):
    training = {
        "device": "auto",
        "precision": "fp32",
        "gradient_checkpointing": False,
        "padding_free": requested,
    }
    return plan_training(CPU, training, 1000, task, method, config)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("name", list(BUILTIN_METHODS))
def test_auto_turns_padding_free_on_exactly_where_it_is_exact(wide_model_dir, name, attention):
    import torch
    from transformers import AutoTokenizer

    from ftkit.train.model_loading import load_model

    tokenizer = AutoTokenizer.from_pretrained(wide_model_dir)
    lengths, padded, flat = batches(tokenizer)
    method = get_method(name)
    method.tokenizer = tokenizer
    options = method.parse_options({})
    extra = {**method.model_load_kwargs(options, "cpu"), "attn_implementation": attention}
    model = load_model(str(wide_model_dir), wide_model_dir, "causal-lm", torch.float32, extra)
    config = model.config  # what the runner gives the planner: the loaded base model's
    assert config._attn_implementation == attention
    torch.manual_seed(1)
    model = method.prepare(model, options, "causal-lm")
    with torch.no_grad():  # move adapters off their identity start (LoRA's B is zero, IA3's scales are one)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    logits_diff, loss_diff = measure(model, lengths, padded, flat)
    exact = logits_diff <= TOLERANCE and loss_diff <= TOLERANCE

    plan = auto_choice(method, config)
    assert plan.padding_free == exact, (name, attention, logits_diff, loss_diff, plan.notes)
    assert any(note.startswith(f"padding-free batches {'on' if exact else 'off'}") for note in plan.notes)
    # The measurement: LoRA-family, IA3, full and freeze exact; prefix and prompt tuning mix sequences.
    assert exact == (name not in ("prefix", "prompt")), (name, logits_diff)


@pytest.mark.parametrize("model_type", PADDING_FREE_ARCHITECTURES)
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_every_listed_architecture_is_exact(model_type, attention):
    """Each architecture `auto` trusts builds per-sequence masks (Mistral with a sliding window shorter than a row)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    extra = {"sliding_window": 8} if model_type == "mistral" else {}
    if model_type in ("qwen3", "gemma"):
        extra["head_dim"] = 16
    config = AutoConfig.for_model(
        model_type,
        vocab_size=64,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **extra,
    )
    config._attn_implementation = attention
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    assert model.config._attn_implementation == attention
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = [{"input_ids": list(range(5, 5 + length))} for length in (7, 12, 3, 9)]
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(rows)
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
    for batch in (padded, flat):
        batch["use_cache"] = False
    logits_diff, loss_diff = measure(model, [7, 12, 3, 9], padded, flat)
    assert logits_diff <= TOLERANCE and loss_diff <= TOLERANCE, (model_type, logits_diff, loss_diff)
    assert auto_choice(get_method("full"), model.config).padding_free


def test_unproven_architecture_or_attention_stays_off_under_auto():
    from types import SimpleNamespace

    lora = get_method("lora")
    for config, words in (
        (SimpleNamespace(model_type="gpt2", _attn_implementation="sdpa"), "architecture `gpt2`"),
        (SimpleNamespace(model_type="llama", _attn_implementation="flex_attention"), "`flex_attention`"),
    ):
        plan = auto_choice(lora, config)
        assert not plan.padding_free
        assert any(words in note and note.startswith("padding-free batches off") for note in plan.notes)
        # asked for explicitly, it is honoured (it may well be exact), with the doubt said
        plan = auto_choice(lora, config, requested=True)
        assert plan.padding_free and any(words in note for note in plan.notes)
    assert not auto_choice(lora, None).padding_free  # the planner without a model: off


@pytest.mark.parametrize("name", ["prefix", "prompt"])
def test_explicit_padding_free_with_an_inexact_method_is_refused(name):
    from types import SimpleNamespace

    config = SimpleNamespace(model_type="llama", _attn_implementation="sdpa")
    with pytest.raises(UsageError) as error:
        auto_choice(get_method(name), config, requested=True)
    assert "training.padding_free" in error.value.message and "attend to each other" in error.value.message
    assert "auto" in error.value.hint
    assert not auto_choice(get_method(name), config, requested=False).padding_free


def test_classification_never_goes_padding_free():
    from types import SimpleNamespace

    config = SimpleNamespace(model_type="llama", _attn_implementation="sdpa")
    assert not auto_choice(get_method("lora"), config, task="classification").padding_free
    with pytest.raises(UsageError):
        auto_choice(get_method("lora"), config, task="classification", requested=True)


@pytest.mark.parametrize(("name", "expected"), [("prompt", False), ("lora", True)])
def test_the_run_records_the_choice_and_says_why(tmp_path, tiny_model_dir, chat_data, name, expected):
    """Through `execute_run`: the resolved recipe holds the choice, the run's notes give the reason."""
    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run
    from tests.conftest import write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"], name)
    loaded = load_recipe(recipe, ["training.max_steps=1", "evaluation.compare_base=false"])
    reporter = SilentReporter()
    result = execute_run(loaded, "run-1", "pf", reporter)
    assert result.status == "succeeded", result.error
    assert result.resolved["training"]["padding_free"] is expected
    notes = [event["message"] for event in reporter.events if event["kind"] == "note"]
    wanted = (
        "padding-free batches on: exact for lora on llama with sdpa attention"
        if expected
        else "padding-free batches off: prompt tuning drops position_ids"
    )
    assert any(note.startswith(wanted) for note in notes), notes
