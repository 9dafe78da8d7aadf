"""Preference tuning in the flow: SFT then DPO as a lineage (`model: run:<tag>`, the SFT run recorded as parent,
DPO starting from its weights), and the real PandaLM pairs from ../shared/data training end to end on the tiny
model (their bad rows refused by default, skipped and counted only when the recipe asks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry
from tests.conftest import require_shared_data
from tests.train.test_preference import pairs, recipe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
PANDALM = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "pandalm-preference" / "pairs_majority.jsonl"
)
BAD_LINES = (140, 141, 142, 144, 145, 147, 248)  # boolean chosen (6), empty chosen (1): checked by hand


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_sft_then_dpo_is_a_lineage(tmp_path, tiny_model_dir):
    registry = str(tmp_path / "reg")
    sft_rows = [{"prompt": p["prompt"], "completion": p["chosen"]} for p in pairs(48, seed=1)]
    (tmp_path / "sft.jsonl").write_text("".join(json.dumps(row) + "\n" for row in sft_rows))
    sft = tmp_path / "sft.yaml"
    sft.write_text(
        f"model: {tiny_model_dir}\ndata: {{train: {tmp_path / 'sft.jsonl'}}}\nmethod: {{name: full}}\n"
        "training: {max_steps: 6, learning_rate: 1.0e-2, batch_size: 8, max_seq_len: 64}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    first = _invoke("run", str(sft), "--json", "--registry", registry)
    assert first.exit_code == 0, first.output
    sft_id = json.loads(first.stdout)["run_id"]
    assert _invoke("tag", sft_id, "sft", "--registry", registry).exit_code == 0

    dpo = recipe(tmp_path / "dpo", tiny_model_dir)
    dpo.write_text(dpo.read_text().replace(f"model: {tiny_model_dir}", "model: run:sft"))
    second = _invoke("run", str(dpo), "--json", "--registry", registry)
    assert second.exit_code == 0, second.output
    dpo_id = json.loads(second.stdout)["run_id"]
    reg = RunRegistry.open(Path(registry))
    with reg:
        loaded = reg.load_run(dpo_id)
    assert loaded["run"]["parent"] == sft_id
    assert loaded["resolved"]["model"] == f"run:{sft_id}"
    assert loaded["metrics"]["eval.preference_accuracy"] >= loaded["metrics"]["base.eval.preference_accuracy"]


def test_pandalm_pairs_refused_until_asked_then_train(tmp_path, tiny_model_dir):
    data = require_shared_data(PANDALM)
    path = tmp_path / "pandalm.yaml"
    path.write_text(
        f"model: {tiny_model_dir}\ntask: preference\ndata:\n  train: {data}\n  eval_split: 0.05\n"
        "method: {name: lora, r: 4, target_modules: all-linear}\n"
        "training: {max_steps: 3, learning_rate: 1.0e-3, batch_size: 4, max_seq_len: 96}\n"
        "evaluation: {max_rows: 16}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    refused = _invoke("run", str(path), "--registry", str(tmp_path / "reg"))
    assert refused.exit_code == 2
    text = " ".join(refused.output.split())
    assert all(f"pairs_majority.jsonl:{line}" in text for line in BAD_LINES[:3])
    assert "data.skip_invalid_rows: true" in text

    trained = _invoke(
        "run",
        str(path),
        "--json",
        "--registry",
        str(tmp_path / "reg"),
        "--set",
        "data.skip_invalid_rows=true",
    )
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)["metrics"]
    assert metrics["data.skipped_rows"] == len(BAD_LINES)
    assert metrics["train.steps"] == 3 and metrics["eval.pairs"] > 0
    assert (
        metrics["data.train_pairs_dropped"] + metrics["data.train_answers_truncated"] > 0
    )  # long real pairs
