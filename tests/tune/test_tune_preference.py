"""`ftkit tune` on preference pairs: detected as `task: preference`, trained with DPO at TRL's defaults, every
training value chosen by a stated rule, and the task contradicted by the data refused, located."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, write_jsonl
from tests.train.test_preference import pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cli(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_tune_trains_preference_pairs_with_dpo(tmp_path, tiny_model_dir):
    rows = pairs(60, seed=3)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    saved = tmp_path / "tuned.yaml"
    result = cli(
        "tune", data, "--model", tiny_model_dir, "--save-recipe", saved, "--set", "training.max_steps=4",
        "--registry", tmp_path / "reg", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load(saved.read_text())
    assert recipe["task"] == "preference" and recipe["data"]["format"] == "preference"
    assert recipe["preference"] == {"objective": "dpo", "beta": 0.1, "loss_type": "sigmoid"}
    assert "generate" not in recipe["evaluation"]

    record = json.loads(result.stdout)
    assert record["status"] == "succeeded" and record["tune"]["task"] == "preference"
    resolved = yaml.safe_load((Path(record["output_dir"]) / "resolved.yaml").read_text())
    assert resolved["task"] == "preference"
    # the LoRA rate for a model under 1B (1e-3, the causal-lm rule) divided by the handbook's 40
    assert resolved["training"]["learning_rate"] == pytest.approx(1e-3 / 40)
    # max_seq_len: p99 of prompt + longer answer + EOS, as TRL tokenizes a plain-string pair, rounded up to 64
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = sorted(
        len(
            tokenizer(row["prompt"] + max(row["chosen"], row["rejected"], key=len) + tokenizer.eos_token)[
                "input_ids"
            ]
        )
        for row in rows[: len(rows) - 6]  # tune holds out 10 %
    )
    assert max(lengths) <= resolved["training"]["max_seq_len"] == 64
    metrics = record["metrics"]
    assert {"eval.preference_accuracy", "base.eval.preference_accuracy", "eval.logp_margin"} <= set(metrics)
    assert metrics["train.steps"] == 4


@pytest.mark.parametrize(
    ("rows", "task", "expected"),
    [
        ("pairs", "causal-lm", "--task causal-lm, but the file is preference data"),
        ("pairs", "classification", "--task classification, but the file is preference data"),
        ("chat", "preference", "--task preference, but the file is not preference data"),
    ],
)
def test_a_task_the_data_contradicts_is_exit_2(tmp_path, tiny_model_dir, rows, task, expected):
    data = write_jsonl(tmp_path / "data.jsonl", pairs(8, seed=1) if rows == "pairs" else chat_rows(8))
    result = cli("tune", data, "--model", tiny_model_dir, "--task", task, "--registry", tmp_path / "reg")
    assert result.exit_code == 2
    assert f"{data}: {expected}" in " ".join(result.output.split())
    assert not (tmp_path / "reg").exists()


def test_a_time_budget_caps_a_preference_run_by_a_measured_preference_probe(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs(60, seed=4))
    result = cli(
        "tune", data, "--model", tiny_model_dir, "--time-budget", "1h", "--set", "training.epochs=1",
        "--registry", tmp_path / "reg", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    shown = json.loads(cli("show", record["run_id"], "--json", "--registry", tmp_path / "reg").stdout)
    auto = shown["run"]["auto"]
    # the batch was sized by probes of real preference steps, and the budget was applied, not ignored
    assert "probed peak batch 1" in auto["training.batch_size"]["evidence"]
    budget = auto["training.max_steps"]
    assert "probe: 2 steps at micro-batch" in budget["evidence"]
    micro, accum = (auto[f"training.{key}"]["value"] for key in ("batch_size", "grad_accum"))
    planned = math.ceil(math.ceil(record["metrics"]["data.train_pairs"] / micro) / accum)  # one epoch
    assert record["metrics"]["train.steps"] == budget["value"] == planned  # an hour covers the whole epoch
