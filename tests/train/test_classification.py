"""Sequence classification through transformers' Trainer on a tiny BERT encoder and a tiny Llama decoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import build_llama, build_tokenizer, classification_rows, write_jsonl


def test_classification_run_reports_accuracy_for_base_and_tuned(tmp_path, tiny_encoder_dir):
    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(96, seed=1))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", classification_rows(32, seed=2))
    recipe = tmp_path / "cls.yaml"
    recipe.write_text(
        f"model: {tiny_encoder_dir}\ntask: classification\n"
        f"data:\n  train: {train}\n  eval: {evaluation}\n"
        "method:\n  name: full\n"
        "training:\n  epochs: 4\n  learning_rate: 5.0e-3\n  batch_size: 16\n  max_seq_len: 32\n"
        f"output: {tmp_path / 'out'}\n"
    )
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    metrics = payload["metrics"]
    assert metrics["eval.accuracy"] >= 0.9
    assert metrics["eval.accuracy"] > metrics["base.eval.accuracy"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"]
    output = Path(payload["output_dir"])
    assert json.loads((output / "labels.json").read_text()) == ["cool", "warm"]
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(output)
    assert reloaded.config.id2label == {0: "cool", 1: "warm"}


@pytest.fixture(scope="module")
def tiny_decoder_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama whose config names no pad token (as many decoder checkpoints do) with the tiny tokenizer,
    whose pad (`<pad>`) differs from its eos (`<|im_end|>`)."""
    directory = tmp_path_factory.mktemp("tiny-llama-classifier")
    tokenizer = build_tokenizer(directory)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    build_llama(directory, len(tokenizer), pad_token_id=None)
    return directory


def test_decoder_classifier_trains_and_pools_the_last_real_token(tmp_path, tiny_decoder_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(96, seed=1))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", classification_rows(32, seed=2))
    recipe = tmp_path / "cls.yaml"
    recipe.write_text(
        f"model: {tiny_decoder_dir}\ntask: classification\n"
        f"data:\n  train: {train}\n  eval: {evaluation}\n"
        "method:\n  name: full\n"
        "training:\n  epochs: 2\n  learning_rate: 5.0e-3\n  batch_size: 16\n  max_seq_len: 32\n"
        f"output: {tmp_path / 'out'}\n"
    )
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    metrics = payload["metrics"]
    assert metrics["train.loss_last"] < metrics["train.loss_first"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"]

    output = Path(payload["output_dir"])
    tokenizer = AutoTokenizer.from_pretrained(output)
    model = AutoModelForSequenceClassification.from_pretrained(output).eval()
    assert type(model).__name__ == "LlamaForSequenceClassification"
    short, long = "the fox is red", "the owl that sat on the purple hill with the cow is yellow"
    batch = tokenizer([short, long], padding=True, return_tensors="pt")
    assert tokenizer.padding_side == "right"
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the short row is padded
    alone = tokenizer([short], return_tensors="pt")
    with torch.no_grad():
        batched_logits = model(**batch).logits[0]
        alone_logits = model(**alone).logits[0]
    # the short row's logits must not depend on the pads after it: pooling on its last real token
    torch.testing.assert_close(batched_logits, alone_logits, atol=1e-5, rtol=0)


def test_decoder_classifier_adapter_reloads_pooling_the_last_real_token(tmp_path, tiny_decoder_dir):
    """A LoRA classifier reloads its base from the hub/folder config (no pad id there): `load_trained_model` must
    give it the run tokenizer's pad, or short rows in a batch are pooled on a pad."""
    import torch

    from ftkit.inference import load_trained_model

    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(64, seed=1))
    recipe = tmp_path / "cls.yaml"
    recipe.write_text(
        f"model: {tiny_decoder_dir}\ntask: classification\ndata:\n  train: {train}\n  eval_split: 0.25\n"
        "method:\n  name: lora\n  r: 4\n"
        "training:\n  max_steps: 2\n  learning_rate: 1.0e-2\n  batch_size: 16\n  max_seq_len: 32\n"
        f"output: {tmp_path / 'out'}\n"
    )
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    trained = load_trained_model(json.loads(result.stdout)["output_dir"])
    tokenizer, model = trained.tokenizer, trained.model.eval()
    short, long = "the fox is red", "the owl that sat on the purple hill with the cow is yellow"
    batch = tokenizer([short, long], padding=True, return_tensors="pt")
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the short row is padded
    with torch.no_grad():
        batched_logits = model(**batch).logits[0]
        alone_logits = model(**tokenizer([short], return_tensors="pt")).logits[0]
    torch.testing.assert_close(batched_logits, alone_logits, atol=1e-5, rtol=0)
