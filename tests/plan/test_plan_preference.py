"""`ftkit plan` on `task: preference` recipes: it shows the memory like a causal-lm plan; full DPO's plan states a
reference copy the size of the loaded model's parameters, an adapter's plan none; the probe's measured peak holds
that copy (full DPO with `reference: auto` above precompute and ORPO); the estimate is near a real run's peak;
chat-only data is exit 2, located."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.plan.estimate import human_bytes
from tests.conftest import chat_rows, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COLOURS = ["red", "blue", "green", "yellow", "white", "black"]


def pair_rows(count: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        colour = rng.choice(COLOURS)
        wrong = rng.choice([c for c in COLOURS if c != colour])
        rows.append(
            {
                "prompt": f"the cat is {colour}. what colour is it?",
                "chosen": f" {colour}",
                "rejected": f" {wrong}",
            }
        )
    return rows


def preference_recipe(
    tmp_path: Path, model: Path, method: str, extra: str = "", rows: list | None = None
) -> Path:
    train = write_jsonl(tmp_path / f"{method}-train.jsonl", rows if rows is not None else pair_rows(24))
    path = tmp_path / f"{method}.yaml"
    path.write_text(
        f"model: {model}\ntask: preference\ndata:\n  train: {train}\nmethod:\n  name: {method}\n"
        "training:\n  max_steps: 4\n  batch_size: 2\n  max_seq_len: 32\n  learning_rate: 1.0e-4\n  precision: fp32\n"
        f"output: {tmp_path / 'out'}\n{extra}"
    )
    return path


def plan(*args: object):
    return CliRunner().invoke(app, ["plan", *map(str, args)])


def parameter_bytes(model_dir: Path) -> int:
    """The loaded model's parameter bytes, counted on the model transformers loads (fp32, as full DPO loads it)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_plan_shows_the_memory_and_full_dpos_reference_copy(tmp_path, tiny_model_dir):
    recipe = preference_recipe(tmp_path, tiny_model_dir, "full")
    size = parameter_bytes(tiny_model_dir)
    shown = plan(recipe, "--candidates", "full,lora", "--probe-steps", "1")
    assert shown.exit_code == 0, shown.output
    assert "(preference)" in shown.output and "(probe)" in shown.output  # measured, like a causal-lm plan
    assert f"reference copy (full DPO): {human_bytes(size)}" in shown.output
    assert "lora: reference: the base with the adapter off, no copy" in shown.output
    assert "2 sequences per pair" in shown.output
    document = json.loads(plan(recipe, "--candidates", "full,lora", "--probe-steps", "0", "--json").stdout)
    full, lora = document["candidates"]
    assert full["memory"]["reference"] == size  # sum of numel × element size of the loaded model
    assert full["memory"]["training"] == sum(
        full["memory"][key] for key in ("weights", "gradients", "optimizer", "activations", "reference")
    )
    assert lora["memory"]["reference"] == 0 and "no copy" in lora["reference"]
    assert document["preference"]["sequences_per_pair"] == 2 and document["preference"]["objective"] == "dpo"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("preference: {reference: precompute}\n", "precompute"),
        ("preference: {objective: orpo}\n", "reference-free"),
    ],
)
def test_no_copy_without_a_reference_model(tmp_path, tiny_model_dir, extra, expected):
    document = plan(preference_recipe(tmp_path, tiny_model_dir, "full", extra), "--candidates", "full",
                    "--probe-steps", "0", "--json")  # fmt: skip
    assert document.exit_code == 0, document.output
    (full,) = json.loads(document.stdout)["candidates"]
    assert full["memory"]["reference"] == 0 and expected in full["reference"]


def test_the_probe_measures_the_reference_copy(broad_model_dir):
    """Full DPO with `reference: auto` holds a frozen copy of the 84 MB model through training: its measured peak
    exceeds the same steps with precompute (no copy) and with ORPO (no reference) by a good part of that copy."""
    from ftkit.plan.preference import probe_preference_step

    rows = pair_rows(8)
    base = {"objective": "dpo", "beta": 0.1, "loss_type": "sigmoid", "reference": "auto", "max_prompt_len": None,
            "simpo_gamma": 0.5}  # fmt: skip
    peaks = {}
    for name, change in {
        "auto": {},
        "precompute": {"reference": "precompute"},
        "orpo": {"objective": "orpo"},
    }.items():
        probe = probe_preference_step(
            str(broad_model_dir), method="full", method_options={}, preference={**base, **change}, batch_size=2,
            max_seq_len=32, rows=rows, steps=1, warmup=1, training={"precision": "fp32", "learning_rate": 1e-4},
        )  # fmt: skip
        peaks[name] = probe.peak_memory_bytes
    copy = parameter_bytes(broad_model_dir)
    assert peaks["auto"] - peaks["precompute"] > copy / 2, (peaks, copy)
    assert peaks["auto"] - peaks["orpo"] > copy / 2, (peaks, copy)


def test_chat_only_data_exits_2_located(tmp_path, tiny_model_dir):
    recipe = preference_recipe(tmp_path, tiny_model_dir, "lora", rows=chat_rows(12))
    result = plan(recipe, "--probe-steps", "0")
    assert result.exit_code == 2, result.output
    assert "task is preference but the data is in" in result.output and "chosen" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_estimate_is_near_a_real_runs_peak(tmp_path, broad_model_dir):
    """The plan (analytic and probed) of full DPO against the peak RSS a real `ftkit run` records, both in fresh
    processes so that each one's runtime is a fresh interpreter's."""
    recipe = preference_recipe(tmp_path, broad_model_dir, "full")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ftkit = [str(Path(sys.executable).with_name("ftkit"))]
    planned = subprocess.run([*ftkit, "plan", str(recipe), "--candidates", "full", "--probe-steps", "1", "--json"],
                             capture_output=True, text=True, env=env, check=True)  # fmt: skip
    (full,) = json.loads(planned.stdout)["candidates"]
    ran = subprocess.run([*ftkit, "run", str(recipe), "--json", "--registry", str(tmp_path / "reg")],
                         capture_output=True, text=True, env=env, check=True)  # fmt: skip
    peak = json.loads(ran.stdout)["metrics"]["train.peak_memory_mb"] * 2**20
    assert 0.67 < full["memory"]["total"] / peak < 1.5, (full["memory"], peak)
    assert 0.67 < full["predicted_bytes"] / peak < 1.5, (full["predicted_bytes"], peak)


def test_batch_size_auto_plans_the_micro_batch_the_run_chooses(tmp_path, tiny_model_dir):
    # max_seq_len 512: the CPU cap of ~2,048 tokens per micro-batch allows 2 pairs (4 sequences), not 4 rows
    rows = pair_rows(160)
    recipe = preference_recipe(tmp_path, tiny_model_dir, "lora", rows=rows)
    recipe.write_text(recipe.read_text().replace("batch_size: 2", "batch_size: auto\n  grad_accum: auto").replace(
        "max_seq_len: 32", "max_seq_len: 512").replace("max_steps: 4", "max_steps: 1"))  # fmt: skip
    document = json.loads(plan(recipe, "--candidates", "lora", "--probe-steps", "1", "--json").stdout)
    run = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert run.exit_code == 0, run.output
    resolved = (Path(json.loads(run.stdout)["output_dir"]) / "resolved.yaml").read_text()
    import yaml

    training = yaml.safe_load(resolved)["training"]
    assert (document["batch_size"], document["grad_accum"]) == (
        training["batch_size"],
        training["grad_accum"],
    )
    assert training["batch_size"] == 2048 // (2 * 512)  # the cap the run applied, worked out by hand
