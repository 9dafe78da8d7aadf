"""Prefix tuning starts from the model's own key/values on a real text (Li & Liang), not from random vectors.

The independent reference is the base model itself: with a text-initialised prefix, the model's logits on an input
must equal the base model's logits on that text followed by the input.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from ftkit.methods.prefix import DEFAULT_INIT_TEXT, PrefixMethod
from tests.conftest import build_tokenizer

INPUT = "what is the color of the owl"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tok"))


def base_model(tokenizer, attention: str = "sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention: the prefix holds kv heads, not query heads
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation=attention,
    )
    return LlamaForCausalLM(config).eval()


def prefixed(tokenizer, options: dict, attention: str = "sdpa"):
    method = PrefixMethod()
    method.tokenizer = tokenizer
    return method.prepare(base_model(tokenizer, attention), method.parse_options(options), "causal-lm").eval()


def logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        tensor = torch.tensor([ids])
        return model(input_ids=tensor, attention_mask=torch.ones_like(tensor)).logits[0]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(
    ("text", "virtual_tokens"),
    [
        ("the fox is red and the cat is blue", 5),  # longer than the prefix: cut
        ("purple owl", 9),  # shorter: repeated
        (None, 20),  # the default text
    ],
)
def test_text_init_acts_as_if_the_text_preceded_the_input(tokenizer, text, virtual_tokens, attention):
    options = {"num_virtual_tokens": virtual_tokens, **({"init_text": text} if text else {})}
    model = prefixed(tokenizer, options, attention)
    text_ids = tokenizer(text or DEFAULT_INIT_TEXT, add_special_tokens=False)["input_ids"]
    context = (text_ids * virtual_tokens)[:virtual_tokens]
    input_ids = tokenizer(INPUT, add_special_tokens=False)["input_ids"]

    expected = logits(base_model(tokenizer, attention), context + input_ids)[virtual_tokens:]
    assert torch.allclose(logits(model, input_ids), expected, atol=1e-5)


def test_random_init_is_peft_default_and_starts_far_from_the_model(tokenizer):
    """The reason for text init: a random prefix moves the untrained model's outputs far more than real text."""
    input_ids = tokenizer(INPUT, add_special_tokens=False)["input_ids"]
    base = logits(base_model(tokenizer), input_ids)
    text = logits(prefixed(tokenizer, {"num_virtual_tokens": 8}), input_ids)
    random = logits(prefixed(tokenizer, {"num_virtual_tokens": 8, "init": "random"}), input_ids)
    assert (random - base).abs().mean() > 2 * (text - base).abs().mean()  # measured: 0.101 vs 0.031


def test_projection_starts_random_and_the_run_says_how_the_prefix_starts():
    method = PrefixMethod()
    projected = method.parse_options({"prefix_projection": True})
    assert not projected.text_init
    notes = method.adjust_training(projected, {}).notes
    assert any("starts random" in note for note in notes)
    notes = method.adjust_training(method.parse_options({"init_text": "hello there"}), {}).notes
    assert any("key/values on 'hello there'" in note for note in notes)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"init": "text", "prefix_projection": True}, "cannot be inverted"),
        ({"init": "random", "init_text": "hello"}, "init_text is unused"),
        ({"prefix_projection": True, "init_text": "hello"}, "init_text is unused"),
    ],
)
def test_contradicting_init_options_are_refused(options, words):
    with pytest.raises(ValidationError, match=words):
        PrefixMethod().parse_options(options)


def test_text_init_without_a_tokenizer_says_what_to_do(tokenizer):
    from ftkit.errors import MethodError

    method = PrefixMethod()
    with pytest.raises(MethodError) as error:
        method.prepare(base_model(tokenizer), method.parse_options({}), "causal-lm")
    assert "init: random" in error.value.hint
