"""Proof that every method really works on a tiny Llama: it learns, it reloads to the same outputs, mergeable
methods merge exactly, and generation after reload equals greedy decoding by full forward passes without a cache."""

from __future__ import annotations

import pytest
import torch

from ftkit.evaluation.generate import greedy_tokens_no_cache
from ftkit.evaluation.metrics import causal_lm_loss
from tests.methods.conftest import ALL_METHODS, MERGEABLE

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "what is the color of the fox"}]


def _ids(trained):
    text = trained.tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    return trained.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]


def _logits(model, ids):
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
    return logits[:, -ids.shape[1] :].float()  # prompt tuning prepends its virtual tokens


def _eval_rows(run, tokenizer):
    """The eval rows exactly as the runner scored them."""
    from ftkit.data.encode import encode_rows
    from ftkit.recipe.load import load_recipe
    from ftkit.train.runner import load_recipe_data

    loaded = load_recipe(run.recipe)
    training, data = loaded.recipe.training, loaded.recipe.data
    encoded = encode_rows(
        load_recipe_data(loaded), tokenizer, max_seq_len=training.max_seq_len, train_on=data.train_on
    )
    return encoded.eval


@pytest.fixture(scope="module")
def reloaded(train_method):
    """reloaded(name) -> (MethodRun, TrainedModel), one reload per method per module."""
    from ftkit.inference import load_trained_model

    cache = {}

    def get(method):
        if method not in cache:
            run = train_method(method)
            cache[method] = (run, load_trained_model(run.output_dir))
        return cache[method]

    return get


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_learns_and_reloads_exactly(method, reloaded):
    run, trained = reloaded(method)
    metrics = run.metrics

    # It trained what it says: a fraction of the weights for adapters, all of them for full.
    fraction = metrics["train.trainable_fraction"]
    assert fraction == 1.0 if method == "full" else 0 < fraction < 0.6

    # Loss goes down: training loss over the run, and held-out loss against the untuned base.
    assert metrics["train.loss_last"] < metrics["train.loss_first"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"] - 0.005, (
        metrics["eval.loss"],
        metrics["base.eval.loss"],
    )

    # Save -> reload gives the same model: the reloaded model scores the eval set exactly as the trained
    # model did in the run, and its generations equal the run's own samples.
    rows = _eval_rows(run, trained.tokenizer)
    loss = causal_lm_loss(trained.model, rows, trained.tokenizer.pad_token_id)["loss"]
    assert loss == pytest.approx(metrics["eval.loss"], abs=1e-5)
    from ftkit.evaluation.generate import greedy_generate

    for sample in run.result.samples:
        again = greedy_generate(
            trained.model,
            trained.tokenizer,
            sample["prompt"],
            6,
            use_cache=trained.method.generation_use_cache,
        )
        assert again == sample["tuned"]


def _reference_greedy(model, ids, max_new_tokens, stop):
    """Greedy decoding written out here, independent of ftkit: each step runs the whole sequence through the
    model and appends the argmax of the last position's logits."""
    sequence = ids[0].tolist()
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            tensor = torch.tensor([sequence])
            logits = model(input_ids=tensor, attention_mask=torch.ones_like(tensor), use_cache=False).logits
            token = int(torch.argmax(logits[0, -1]))
            new.append(token)
            if token in stop:
                break
            sequence.append(token)
    return new


@pytest.mark.parametrize("method", ALL_METHODS)
def test_generation_after_reload_equals_no_cache_greedy(method, reloaded):
    from ftkit.inference import generate

    _, trained = reloaded(method)
    ids = _ids(trained)
    stop = {trained.tokenizer.eos_token_id, trained.tokenizer.pad_token_id}
    expected = trained.tokenizer.decode(
        _reference_greedy(trained.model, ids, 8, stop), skip_special_tokens=True
    )
    assert generate(trained, PROMPT, max_new_tokens=8) == expected


@pytest.mark.parametrize("method", MERGEABLE)
def test_merged_logits_match_unmerged(method, train_method):
    from ftkit.inference import load_trained_model

    run = train_method(method)
    # QLoRA merges onto the full-precision base, so its unmerged reference is the adapter on that base too.
    unmerged = load_trained_model(run.output_dir, full_precision_base=True)
    merged = load_trained_model(run.output_dir, merge=True)
    assert not any("lora" in name or "ia3" in name for name, _ in merged.model.named_parameters())
    ids = _ids(unmerged)
    expected, actual = _logits(unmerged.model, ids), _logits(merged.model, ids)
    assert torch.allclose(expected, actual, atol=1e-4), (expected - actual).abs().max()


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_virtual_token_methods_change_the_output_and_cannot_merge(method, reloaded):
    """The trained prefix / soft prompt is really used by ftkit's forward and generate path."""
    from ftkit.errors import MethodError
    from ftkit.inference import load_base_model, load_trained_model

    run, trained = reloaded(method)
    assert trained.method.generation_use_cache is False
    base = load_base_model(run.output_dir)
    ids = _ids(trained)
    tuned_logits, base_logits = _logits(trained.model, ids), _logits(base, ids)
    assert (tuned_logits - base_logits).abs().max() > 1e-2

    # ftkit's decoding of the tuned model follows the tuned logits, not the base model's.
    stop = {trained.tokenizer.eos_token_id}
    tuned_tokens = greedy_tokens_no_cache(trained.model, ids, 6, stop)
    base_tokens = greedy_tokens_no_cache(base, ids, 6, stop)
    assert tuned_tokens[0] == int(tuned_logits[0, -1].argmax())
    assert tuned_tokens != base_tokens
    with pytest.raises(MethodError, match="cannot be merged"):
        load_trained_model(run.output_dir, merge=True)


def test_prefix_tuning_turns_gradient_checkpointing_off_and_says_so(train_method):
    run = train_method("prefix")
    assert run.result.resolved["training"]["gradient_checkpointing"] is False
    notes = [e["message"] for e in run.events if e["kind"] == "note"]
    assert any("gradient checkpointing turned off (the recipe asked for it" in note for note in notes), notes


def test_qlora_trains_on_a_4bit_base(reloaded):
    _, trained = reloaded("qlora")
    import bitsandbytes as bnb

    assert (
        getattr(trained.model, "is_loaded_in_4bit", False) or trained.model.base_model.model.is_loaded_in_4bit
    )
    kinds = {type(m) for m in trained.model.modules()}
    assert any(issubclass(kind, bnb.nn.Linear4bit) for kind in kinds)


def test_freeze_trains_only_the_last_layer_and_named_modules(train_method, wide_model_dir):
    from safetensors.torch import load_file

    run = train_method("freeze")
    saved = load_file(str(run.output_dir / "model.safetensors"))
    original = load_file(str(wide_model_dir / "model.safetensors"))
    changed = {name for name, tensor in saved.items() if not torch.equal(tensor, original[name])}
    assert changed, "nothing trained"
    assert all(name.startswith(("model.layers.1.", "lm_head.")) for name in changed), changed
    assert "lm_head.weight" in changed
