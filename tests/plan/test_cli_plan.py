"""`ftkit plan` end to end on a tiny local model: the JSON plan, exit 2 with cheaper alternatives, bad input."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


def plan(*args: str):
    return runner.invoke(app, ["plan", *map(str, args)])


def test_json_plan_has_every_candidate_with_memory_time_and_probe(recipe_file):
    result = plan(recipe_file, "--candidates", "lora,full", "--probe-steps", "1", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["method"] == "lora" and document["recommended"] == "lora"
    assert document["batch_size"] == 8 and document["max_seq_len"] == 64
    assert document["steps_per_epoch"] == math.ceil(64 / 8)  # 64 chat rows, batch 8, grad_accum 1
    assert document["planned_steps"] == 8  # max_steps 12 caps nothing: 1 epoch is 8 steps
    assert document["free_bytes"] > 0 and document["free_source"]
    assert [c["method"] for c in document["candidates"]] == ["lora", "full"]
    for candidate in document["candidates"]:
        memory = candidate["memory"]
        parts = memory["weights"] + memory["gradients"] + memory["optimizer"] + memory["activations"]
        assert memory["training"] == parts
        assert memory["total"] == memory["runtime"] + max(memory["training"], memory["loading_peak"])
        assert candidate["probe"]["steps_probed"] == 1 and candidate["seconds_per_step"] > 0
        assert candidate["run_seconds"] == pytest.approx(candidate["seconds_per_step"] * 8, abs=0.05)  # 0.1 s
    lora, full = document["candidates"]
    assert lora["memory"]["trainable_params"] < full["memory"]["trainable_params"]
    assert full["memory"]["optimizer"] == 8 * full["memory"]["trainable_params"]  # AdamW: 2 fp32 states


def test_a_method_that_cannot_fit_exits_2_naming_the_cheaper_one(tmp_path, broad_model_dir, chat_data):
    # full fine-tuning of 21M parameters needs ~300 MB more than LoRA: far more than the process drifts between calls
    recipe = write_recipe(
        tmp_path / "full.yaml", broad_model_dir, chat_data["train"], chat_data["eval"], "full"
    )
    sized = plan(recipe, "--candidates", "lora,full", "--probe-steps", "0", "--json")
    assert sized.exit_code == 0, sized.output
    totals = {c["method"]: c["predicted_bytes"] for c in json.loads(sized.stdout)["candidates"]}
    assert totals["lora"] < totals["full"]
    limit = (totals["lora"] + totals["full"]) // 2  # lora fits, full does not
    result = plan(recipe, "--candidates", "lora,full", "--probe-steps", "0", "--memory-limit", str(limit))
    assert result.exit_code == 2, result.output
    assert "full needs" in result.output and "use lora" in result.output
    assert "--memory-limit" in result.output  # says where the free figure came from


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["missing.jsonl", "--model", "{model}"], "data file not found"),
        (["{train}", "--model", "./no-such-model"], "does not exist"),
        (["{train}"], "--model"),
        (["{recipe}", "--memory-limit", "lots"], "not a size"),
    ],
)
def test_bad_input_is_located_with_exit_2(tmp_path, tiny_model_dir, chat_data, recipe_file, args, expected):
    filled = [
        a.format(model=tiny_model_dir, train=chat_data["train"], recipe=recipe_file)
        if "{" in a
        else str(tmp_path / a)
        if a.endswith(".jsonl")
        else a
        for a in args
    ]
    result = plan(*filled)
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_a_recipe_with_errors_is_refused_with_its_line(tmp_path, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "bad.yaml", tiny_model_dir, chat_data["train"], extra="trainig: {}\n")
    result = plan(recipe)
    assert result.exit_code == 2
    assert "bad.yaml:" in result.output and "trainig" in result.output
