"""Sequence classification through transformers' Trainer on a tiny BERT encoder."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import classification_rows, write_jsonl


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
