"""Per-sequence padding-free attention (ftkit.train.packed_attention) is exact against padded batches, builds no mask
over the flattened batch, and leaves nothing behind in what a run saves.

The reference is transformers' own sdpa on a right-padded batch (attention mask), as TRL's collator builds it; the
packed batch is TRL's padding-free row (position_ids restarting at each sequence) through the per-sequence path.
"""

from __future__ import annotations

import json

import pytest

from ftkit.methods.catalog import get_method
from ftkit.train import packed_attention
from ftkit.train.hardware import PADDING_FREE_ARCHITECTURES
from tests.conftest import chat_rows

TOLERANCE = 1e-5
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def batches(tokenizer) -> tuple[list[int], dict, dict]:
    """(row lengths, padded batch, padding-free batch) from TRL's collator, rows of different lengths."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    texts = [tokenizer.apply_chat_template(row["messages"], tokenize=False) for row in chat_rows(4, seed=3)]
    texts[1] += " and the owl is purple"
    texts[3] = texts[3][:20]
    rows = [{"input_ids": tokenizer(text)["input_ids"]} for text in texts]
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(rows)
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(rows)
    for batch in (padded, flat):
        batch["use_cache"] = False
    return [len(row["input_ids"]) for row in rows], padded, flat


def logits_and_grads(model, batch: dict) -> tuple:
    model.zero_grad()
    output = model(**batch)
    output.loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    return output.logits.detach(), output.loss.item(), grads


@pytest.mark.parametrize("name", ["lora", "dora", "qlora", "ia3", "full", "freeze"])
def test_per_sequence_attention_matches_the_padded_batch(wide_model_dir, name):
    """Logits of every real token, the loss and every trained parameter's gradient within 1e-5, GQA model."""
    import torch
    from transformers import AutoTokenizer

    from ftkit.train.model_loading import load_model

    tokenizer = AutoTokenizer.from_pretrained(wide_model_dir)
    lengths, padded, flat = batches(tokenizer)
    method = get_method(name)
    method.tokenizer = tokenizer
    options = method.parse_options({})
    extra = {**method.model_load_kwargs(options, "cpu"), "attn_implementation": "sdpa"}
    model = load_model(str(wide_model_dir), wide_model_dir, "causal-lm", torch.float32, extra)
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # GQA
    torch.manual_seed(1)
    model = method.prepare(model, options, "causal-lm")
    with torch.no_grad():  # adapters off their identity start
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.eval()
    reference_logits, reference_loss, reference_grads = logits_and_grads(model, padded)
    with packed_attention.training_attention(model, True, "cpu", "fp32") as used:
        assert used == packed_attention.PACKED_ATTENTION
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        assert base.config._attn_implementation == used
        logits, loss, grads = logits_and_grads(model, flat)
    assert model.config._attn_implementation == "sdpa"  # put back
    start = 0
    for row, length in enumerate(lengths):
        difference = (reference_logits[row, :length] - logits[0, start : start + length]).abs().max().item()
        assert difference <= TOLERANCE, (name, row, difference)
        start += length
    assert abs(reference_loss - loss) <= TOLERANCE
    assert reference_grads.keys() == grads.keys() and grads
    for key, grad in grads.items():
        assert (reference_grads[key] - grad).abs().max().item() <= TOLERANCE, (name, key)


@pytest.mark.parametrize("model_type", PADDING_FREE_ARCHITECTURES)
def test_every_padding_free_architecture_is_exact_per_sequence(model_type):
    """Each architecture `auto` trusts (Mistral without a sliding window) gives the padded batch's logits."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    extra = {"sliding_window": None} if model_type == "mistral" else {}
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
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    lengths = [7, 12, 1, 9]
    rows = [{"input_ids": list(range(5, 5 + length))} for length in lengths]
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(rows)
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
    with torch.no_grad():
        reference = model(**padded, use_cache=False).logits
        with packed_attention.training_attention(model, True, "cpu", "fp32") as used:
            assert used == packed_attention.PACKED_ATTENTION
            logits = model(**flat, use_cache=False).logits
    start = 0
    for row, length in enumerate(lengths):
        difference = (reference[row, :length] - logits[0, start : start + length]).abs().max().item()
        assert difference <= TOLERANCE, (model_type, row, difference)
        start += length


def test_a_packed_batch_builds_no_mask_and_a_padded_one_the_usual_mask(tiny_model_dir):
    """transformers' sdpa builds an L×L mask for the packed row; the packed implementation builds none, and for a
    padded batch builds exactly sdpa's mask."""
    import torch
    from transformers import AutoConfig
    from transformers.masking_utils import create_causal_mask

    packed_attention.register()
    config = AutoConfig.from_pretrained(tiny_model_dir)
    position_ids = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]])
    embeds = torch.zeros(1, 12, 8)

    def mask(attention: str, attention_mask=None, ids=position_ids, inputs=embeds):
        config._attn_implementation = attention
        return create_causal_mask(config, inputs, attention_mask, None, position_ids=ids)

    dense = mask("sdpa")
    # the old path: a mask quadratic in the flattened batch
    assert dense is not None and dense.shape[-2:] == (12, 12)
    assert mask(packed_attention.PACKED_ATTENTION) is None
    padding = torch.tensor([[1] * 12, [1] * 7 + [0] * 5])
    rows = torch.arange(12).repeat(2, 1)
    expected = mask("sdpa", padding, rows, torch.zeros(2, 12, 8))
    assert torch.equal(
        mask(packed_attention.PACKED_ATTENTION, padding, rows, torch.zeros(2, 12, 8)), expected
    )


def test_sequence_lengths_match_trls_boundaries(tiny_model_dir):
    from transformers import AutoTokenizer

    lengths, _, flat = batches(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert packed_attention.sequence_lengths(flat["position_ids"]) == lengths


def test_the_varlen_kernel_is_chosen_on_cuda_with_flash_attn_only():
    choose = packed_attention.choose_attention
    assert choose("cuda", "bf16", has_varlen_kernel=True) == "flash_attention_2"
    assert choose("cuda", "fp16", has_varlen_kernel=True) == "flash_attention_2"
    packed = packed_attention.PACKED_ATTENTION
    assert choose("cuda", "fp32", has_varlen_kernel=True) == packed  # the kernel has no fp32
    assert choose("cuda", "bf16", has_varlen_kernel=False) == packed_attention.PACKED_ATTENTION
    assert choose("cpu", "bf16", has_varlen_kernel=True) == packed_attention.PACKED_ATTENTION
    assert choose("mps", "fp32", has_varlen_kernel=False) == packed_attention.PACKED_ATTENTION


def test_sliding_window_models_keep_transformers_masks():
    from transformers import AutoConfig

    def config(model_type, **extra):
        made = AutoConfig.for_model(model_type, **extra)
        made._attn_implementation = "sdpa"
        return made

    assert packed_attention.packed_attention_applies(config("llama"))
    assert packed_attention.packed_attention_applies(config("qwen2"))
    assert not packed_attention.packed_attention_applies(config("mistral", sliding_window=8))
    eager = config("llama")
    eager._attn_implementation = "eager"
    assert not packed_attention.packed_attention_applies(eager)


def test_a_padding_free_run_trains_saves_and_reloads_in_plain_transformers(
    tmp_path, tiny_model_dir, chat_data
):
    """Through `execute_run` (LoRA, padding-free on under auto): the run says it attends per sequence, the saved
    config names no custom attention, and the reloaded adapter gives the run's own tuned eval loss."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run
    from tests.cli.test_run import eval_loss_of
    from tests.conftest import write_recipe

    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    loaded = load_recipe(recipe, ["training.max_steps=3", "evaluation.compare_base=false"])
    reporter = SilentReporter()
    result = execute_run(loaded, "run-1", "pa", reporter)
    assert result.status == "succeeded", result.error
    assert result.resolved["training"]["padding_free"] is True
    notes = [event["message"] for event in reporter.events if event["kind"] == "note"]
    assert any("attends per sequence" in note for note in notes), notes
    output = next((tmp_path / "outputs").rglob("adapter_config.json")).parent
    for saved in output.glob("*.json"):
        assert packed_attention.PACKED_ATTENTION not in saved.read_text(), saved
    metrics = json.loads((output / "metrics.json").read_text())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), output)
    assert model.config._attn_implementation == "sdpa"
    assert eval_loss_of(model, output) == pytest.approx(metrics["eval.loss"], abs=1e-5)
