"""`ftkit export --merge` of a LoRA classifier: the merged folder loads with plain transformers'
AutoModelForSequenceClassification in a fresh interpreter that never imports ftkit, keeps the labels, and gives
the unmerged model's logits (adapter and trained head, as ftkit loads the run) within 1e-4."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.inference import load_trained_model
from tests.conftest import classification_rows, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXT = "the cat is orange"

LOADER = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, text = sys.argv[1], sys.argv[2]
model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
tokenizer = AutoTokenizer.from_pretrained(folder)
with torch.no_grad():
    logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
assert not any(name == "ftkit" or name.startswith("ftkit.") for name in sys.modules), "ftkit was imported"
print(json.dumps({"logits": logits.tolist(), "labels": model.config.id2label}))
"""


def test_merged_lora_classifier_loads_without_ftkit_with_the_unmerged_logits(tmp_path, tiny_encoder_dir):
    import torch

    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(64, seed=1))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", classification_rows(16, seed=2))
    recipe = tmp_path / "cls.yaml"
    recipe.write_text(
        f"model: {tiny_encoder_dir}\ntask: classification\n"
        f"data:\n  train: {train}\n  eval: {evaluation}\n"
        "method:\n  name: lora\n  r: 4\n  target_modules: all-linear\n"
        "training:\n  max_steps: 6\n  learning_rate: 1.0e-2\n  batch_size: 16\n  max_seq_len: 32\n"
        f"output: {tmp_path / 'out'}\n"
    )
    runner = CliRunner()
    trained = runner.invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert trained.exit_code == 0, trained.output
    run = json.loads(trained.stdout)
    out = tmp_path / "merged"
    exported = runner.invoke(
        app, ["export", run["run_id"], "-o", str(out), "--merge", "--registry", str(tmp_path / "reg")]
    )
    assert exported.exit_code == 0, exported.output

    reference = load_trained_model(run["output_dir"])  # the adapter on its base, with the trained head
    with torch.no_grad():
        expected = reference.model(**reference.tokenizer(TEXT, return_tensors="pt")).logits[0].float()
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, str(out), TEXT], capture_output=True, text=True, cwd=tmp_path
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    found = json.loads(loaded.stdout)
    assert found["labels"] == {"0": "cool", "1": "warm"}
    assert (torch.tensor(found["logits"]) - expected).abs().max().item() < 1e-4
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card
