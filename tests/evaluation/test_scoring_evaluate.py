"""`evaluate` reports the chosen metrics: generation metrics on a tiny Llama's greedy answers (references planted from
its own answers, computed without ftkit), and classification's report on a tiny BERT classifier against per-row
predictions made here one row at a time."""

from __future__ import annotations

import pytest

from ftkit.data.render import render_example
from ftkit.evaluation.evaluate import evaluate
from ftkit.recipe.schema import EvaluationConfig
from tests.conftest import classification_rows
from tests.evaluation.test_exact_match import _argmax_answers


def test_generation_metrics_and_per_row_scores(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    questions = ["what is the color of the fox", "is the cat red"]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    answers = _argmax_answers(tiny_model_dir, prompts, max_new_tokens=3)
    assert all(answer.strip() and answer.upper() != answer for answer in answers), answers
    # row 0: the answer shouted with a full stop (exact_match yes, strict no); row 1: the answer inside a sentence
    references = [answers[0].upper() + ".", f"well {answers[1]} indeed"]
    examples = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": r}]}
        for q, r in zip(questions, references, strict=True)
    ]
    rows = [render_example(e, tokenizer, 64) for e in examples]
    rows = [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]
    settings = EvaluationConfig(
        generate=2,
        max_new_tokens=3,
        batch_size=2,
        metrics=["exact_match", "exact_match_strict", "json_valid"],
    )
    result = evaluate(model, tokenizer, rows, task="causal-lm", settings=settings, examples=examples)
    assert set(result.metrics) == {"loss", "perplexity", "exact_match", "exact_match_strict", "json_valid"}
    assert result.metrics["exact_match"] == 0.5
    assert result.metrics["exact_match_strict"] == 0.0
    assert result.metrics["json_valid"] == 0.0  # the tiny model's words are not JSON
    assert [s["prediction"] for s in result.samples] == answers
    assert [s["scores"]["exact_match"] for s in result.samples] == [1.0, 0.0]
    assert [s["match"] for s in result.samples] == [True, False]
    assert all(s["failures"]["json_valid"].startswith("not JSON") for s in result.samples)
    assert result.confusion is None

    # contains: reference 0 normalised is answer 0 itself (inside it); reference 1 is longer than answer 1 (not)
    settings = EvaluationConfig(generate=2, max_new_tokens=3, batch_size=2, metrics=["contains"])
    result = evaluate(model, tokenizer, rows, task="causal-lm", settings=settings, examples=examples)
    assert [s["scores"]["contains"] for s in result.samples] == [1.0, 0.0]
    assert result.metrics["contains"] == 0.5
    assert "exact_match" not in result.metrics


def _classifier(tiny_encoder_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_encoder_dir, num_labels=2, id2label={0: "cool", 1: "warm"}, label2id={"cool": 0, "warm": 1}
    ).eval()
    return model, AutoTokenizer.from_pretrained(tiny_encoder_dir)


def test_classification_reports_macro_f1_and_per_class_rates(tiny_encoder_dir):
    import torch

    model, tokenizer = _classifier(tiny_encoder_dir)
    data = classification_rows(24, seed=5)
    rows = [
        {"input_ids": tokenizer(r["text"])["input_ids"], "labels": int(r["label"] == "warm")} for r in data
    ]
    with torch.no_grad():  # each row alone, no padding: the reference predictions
        predicted = [int(model(input_ids=torch.tensor([r["input_ids"]])).logits[0].argmax()) for r in rows]
    targets = [r["labels"] for r in rows]
    result = evaluate(
        model, tokenizer, rows, task="classification", settings=EvaluationConfig(batch_size=1), examples=[]
    )
    pairs = list(zip(predicted, targets, strict=True))
    count = {(p, t): pairs.count((p, t)) for p in (0, 1) for t in (0, 1)}
    assert result.confusion == {
        "labels": ["cool", "warm"],
        "matrix": [[count[0, 0], count[1, 0]], [count[0, 1], count[1, 1]]],
    }
    assert result.metrics["accuracy"] == pytest.approx((count[0, 0] + count[1, 1]) / 24)
    f1 = []
    for label, name in ((0, "cool"), (1, "warm")):
        tp = count[label, label]
        fp, fn = count[label, 1 - label], count[1 - label, label]
        assert result.metrics[f"precision.{name}"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
        assert result.metrics[f"recall.{name}"] == pytest.approx(tp / (tp + fn) if tp + fn else 0.0)
        f1.append(2 * tp / (2 * tp + fp + fn))
    assert result.metrics["macro_f1"] == pytest.approx(sum(f1) / 2)
    assert "loss" in result.metrics and "confusion" not in result.metrics

    chosen = EvaluationConfig(batch_size=1, metrics=["macro_f1"])
    result = evaluate(model, tokenizer, rows, task="classification", settings=chosen, examples=[])
    assert set(result.metrics) == {"loss", "accuracy", "macro_f1"}
