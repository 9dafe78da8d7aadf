"""Streaming's hooks (the playground's use of `stream_text`): `on_tokens` counts every decoded token, and setting
`cancel` ends the decoding within a token, cached or not, the text then being the shorter answer."""

from __future__ import annotations

import threading

import pytest

from ftkit.evaluation.decoding import generate_texts, stream_text
from ftkit.inference import render_prompt

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("use_cache", [True, False])
def test_cancel_ends_the_stream_within_a_token(tiny_model_dir, use_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt = render_prompt(tokenizer, "what is the color of the cat")
    counted: list[int] = []
    full = "".join(stream_text(model, tokenizer, prompt, 30, use_cache=use_cache, on_tokens=counted.append))
    assert sum(counted) == 30  # random weights: no end of text within 30 tokens
    cancel = threading.Event()
    seen: list[int] = []

    def on_tokens(count: int) -> None:
        seen.append(count)
        if sum(seen) == 3:
            cancel.set()  # as the server does when its client goes away

    pieces = stream_text(
        model, tokenizer, prompt, 30, use_cache=use_cache, on_tokens=on_tokens, cancel=cancel
    )
    text = "".join(pieces)
    # transformers checks its stopping criteria before it hands the step's token over: one more may come
    assert sum(seen) in (3, 4) if use_cache else sum(seen) == 3
    assert text == generate_texts(model, tokenizer, [prompt], sum(seen), use_cache=use_cache)[0]
    assert full.startswith(text) and len(full) > len(text)
