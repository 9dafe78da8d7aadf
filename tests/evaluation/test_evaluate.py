"""`evaluate_model` on a tiny Llama: its loss equals transformers' own per-row losses weighted by token count,
`max_rows` limits what is scored, and generated samples carry exact match against planted references."""

from __future__ import annotations

import math

import pytest

from ftkit.data.render import render_example
from ftkit.evaluation.evaluate import evaluate_model
from ftkit.recipe.schema import EvaluationConfig
from tests.conftest import chat_rows
from tests.evaluation.test_exact_match import _argmax_answers


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(
        tiny_model_dir
    )


def _reference_loss(model, rows) -> float:
    """Each row alone through transformers' loss (mean over its shifted labelled tokens), weighted by its count."""
    import torch

    total, tokens = 0.0, 0
    with torch.no_grad():
        for row in rows:
            count = sum(label != -100 for label in row["labels"][1:])
            loss = model(
                input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])
            ).loss
            total, tokens = total + float(loss) * count, tokens + count
    return total / tokens


def test_loss_is_token_weighted_over_the_first_max_rows(tiny):
    model, tokenizer = tiny
    rows = []
    for example in chat_rows(5, seed=3):
        rendered = render_example(example, tokenizer, 64)
        rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    settings = EvaluationConfig(max_rows=3, batch_size=2)
    scores, samples = evaluate_model(model, tokenizer, rows, task="causal-lm", settings=settings, examples=[])
    assert samples == []
    assert scores["loss"] == pytest.approx(_reference_loss(model, rows[:3]), abs=1e-5)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]), rel=1e-6)
    assert evaluate_model(model, tokenizer, [], task="causal-lm", settings=settings, examples=[]) == ({}, [])


@pytest.mark.parametrize("use_cache", [True, False])
def test_samples_score_exact_match_against_references(tiny, tiny_model_dir, use_cache):
    model, tokenizer = tiny
    questions = ["what is the color of the fox", "what is the color of the owl", "is the cat red"]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    answers = _argmax_answers(tiny_model_dir, prompts, max_new_tokens=3)
    references = [answers[0], answers[1] + " and more", answers[2]]
    examples = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": r}]}
        for q, r in zip(questions, references, strict=True)
    ]
    rows = [render_example(e, tokenizer, 64) for e in examples]
    rows = [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]
    settings = EvaluationConfig(generate=2, max_new_tokens=3, batch_size=2)
    scores, samples = evaluate_model(
        model, tokenizer, rows, task="causal-lm", settings=settings, examples=examples, use_cache=use_cache
    )
    assert [s["prompt"] for s in samples] == prompts[:2]  # only the first `generate` examples
    assert [s["prediction"] for s in samples] == answers[:2]
    assert [s["reference"] for s in samples] == references[:2]
    assert [s["match"] for s in samples] == [True, False]
    assert scores["exact_match"] == 0.5
