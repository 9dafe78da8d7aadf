"""An auto-batch plan estimates and probes at the micro-batch the run's auto rule would use, not at the target
effective batch (GSM8K on SmolLM2 was probed at 16 × 448 and pushed a 24 GiB machine to 18 GiB)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


def plan_json(*args: object) -> dict:
    result = runner.invoke(app, ["plan", *map(str, args), "--candidates", "lora", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_auto_batch_plan_probes_at_the_micro_batch_and_reports_its_peak(tiny_model_dir, chat_data):
    # effective batch: 16 for causal-lm, lowered to the power of two ≤ rows / 8; on a CPU a micro-batch holds
    # ≤ 2,048 tokens, so at 1,024 tokens the micro-batch is 2 and grad_accum makes up the rest.
    document = plan_json(
        chat_data["train"], "--model", tiny_model_dir, "--max-seq-len", 1024, "--probe-steps", 1
    )
    assert document["device"] == "cpu"
    rows = document["train_rows"]
    effective = min(16, 2 ** math.floor(math.log2(rows / 8)))
    assert effective >= 4  # else the cap would not be what lowers the micro-batch
    (lora,) = document["candidates"]
    expected = (2, effective // 2)
    assert (
        (document["batch_size"], document["grad_accum"])
        == expected
        == (lora["batch_size"], lora["grad_accum"])
    )
    assert document["effective_batch"] == effective
    assert lora["probe"]["batch_size"] == 2 < effective
    assert lora["probe"]["tokens_per_step"] <= 2 * 1024
    # the reported peak is the probe's at that micro-batch, and the estimate is the one for batch 2
    assert lora["predicted_bytes"] == lora["probe"]["peak_memory_bytes"] + lora["probe"]["baseline_bytes"]
    fixed = [chat_data["train"], "--model", tiny_model_dir, "--max-seq-len", 1024, "--probe-steps", 0]
    at_2 = plan_json(*fixed, "--batch-size", 2)["candidates"][0]["memory"]
    at_4 = plan_json(*fixed, "--batch-size", 4)["candidates"][0]["memory"]
    assert lora["memory"]["activations"] == at_2["activations"] < at_4["activations"]
    assert document["steps_per_epoch"] == math.ceil(math.ceil(rows / 2) / (effective // 2))
    assert "capped at 2" in " ".join(lora["notes"])


def test_a_batch_the_estimate_rules_out_is_never_probed(tiny_model_dir, chat_data):
    # 1 MB free: the analytic estimate at batch 1 already exceeds it, so no probe may start.
    document = plan_json(chat_data["train"], "--model", tiny_model_dir, "--memory-limit", "1MB")
    (lora,) = document["candidates"]
    assert lora["probe"] is None and lora["fits"] is False
    assert lora["predicted_bytes"] > 10**6 and document["recommended"] is None
    assert "not even one example per step fits" in " ".join(lora["notes"])
