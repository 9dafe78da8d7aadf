"""`auto` values end to end: an all-auto recipe on a tiny model trains with concrete values in resolved.yaml, each
choice shown at the start and recorded with its rule and evidence; a micro-batch that cannot fit and a time budget
too short for one step stop the run with exit 2 and nothing in the registry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import ExitCode
from ftkit.registry.store import RunRegistry
from ftkit.train import auto_values
from tests.conftest import chat_rows, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
TRAIN_ROWS = 64


def latest_run(registry: Path) -> dict:
    store = RunRegistry.open(registry)
    return store.load_run(store.resolve("@latest"))


def _all_auto_recipe(root: Path, model: Path, extra: str = "") -> Path:
    train = write_jsonl(root / "data" / "train.jsonl", chat_rows(TRAIN_ROWS, seed=1))
    evaluation = write_jsonl(root / "data" / "eval.jsonl", chat_rows(8, seed=2))
    recipe = root / "recipe.yaml"
    recipe.write_text(
        f"model: {model}\ndata:\n  train: {train}\n  eval: {evaluation}\nmethod: lora\n"
        f"training:\n  seed: 1\n{extra}evaluation:\n  compare_base: false\noutput: {root / 'outputs'}\n"
    )
    return recipe


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("auto-run")
    recipe = _all_auto_recipe(root, tiny_model_dir, extra="  time_budget: 1h\n")
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(root / "registry")])
    return root, result


def test_an_all_auto_run_resolves_concrete_values_by_the_stated_rules(auto_run):
    root, result = auto_run
    assert result.exit_code == 0, result.output
    output = next((root / "outputs").iterdir())
    training = yaml.safe_load((output / "resolved.yaml").read_text())["training"]
    method = yaml.safe_load((output / "resolved.yaml").read_text())["method"]
    # By hand: 64 rows x 3 = 192 examples seen, within 100-25,000 -> 3 epochs; LoRA causal-lm under 1B -> 1e-3;
    # effective batch min(16, power of two <= 64/8 = 8) = 8, which fits a tiny model -> 8 x 1;
    # rank 8 under 1,000 rows; steps = 3 epochs x 64/8 = 24, all within an hour.
    assert training["epochs"] == 3
    assert training["learning_rate"] == 1e-3
    assert (training["batch_size"], training["grad_accum"]) == (8, 1)
    assert method["r"] == 8
    assert training["max_steps"] == 24
    assert training["max_seq_len"] % 64 == 0 or training["max_seq_len"] == 128  # the tiny model's context
    assert "auto" not in training.values() and method["r"] != "auto"


def test_auto_max_seq_len_truncates_at_most_one_percent_of_rows(auto_run):
    root, _ = auto_run
    run = latest_run(root / "registry")
    assert run["metrics"]["data.truncated_rows"] <= math.floor(0.01 * TRAIN_ROWS)
    assert run["metrics"]["train.steps"] == 24


def test_the_registry_records_each_rule_and_its_evidence(auto_run):
    root, result = auto_run
    run = latest_run(root / "registry")
    auto = run["run"]["auto"]
    assert set(auto) == {
        "training.epochs",
        "training.learning_rate",
        "training.batch_size",
        "training.grad_accum",
        "training.max_seq_len",
        "training.max_steps",
        "method.r",
    }
    assert auto["training.epochs"]["value"] == 3
    assert "64 rows × 3 = 192 examples seen" in auto["training.epochs"]["evidence"]
    assert "OpenAI" in auto["training.epochs"]["rule"]
    assert "probed peak batch 1" in auto["training.batch_size"]["evidence"]
    assert "1h / " in auto["training.max_steps"]["evidence"]
    # shown beside the value at the start of the run
    assert "epochs 3 (auto: 64 rows × 3 = 192 examples seen" in result.output
    assert resolved_value(run, "max_seq_len") == auto["training.max_seq_len"]["value"]


def resolved_value(run: dict, key: str):
    return run["resolved"]["training"][key]


def test_explicit_values_are_kept_exactly(tmp_path, tiny_model_dir):
    recipe = _all_auto_recipe(
        tmp_path,
        tiny_model_dir,
        extra="  epochs: 1\n  learning_rate: 1.0e-3\n  batch_size: 4\n  max_seq_len: 96\n  max_steps: 2\n",
    )
    text = recipe.read_text().replace("method: lora\n", "method:\n  name: lora\n  r: 4\n")
    recipe.write_text(text)
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 0, result.output
    run = latest_run(tmp_path / "registry")
    training = run["resolved"]["training"]
    assert (training["epochs"], training["learning_rate"], training["batch_size"]) == (1, 1e-3, 4)
    assert (training["max_seq_len"], training["max_steps"], training["grad_accum"]) == (96, 2, 1)
    assert run["resolved"]["method"]["r"] == 4
    assert set(run["run"]["auto"]) == {"training.grad_accum"}  # a given batch is the effective batch


def test_a_micro_batch_that_does_not_fit_even_at_one_is_exit_2_with_the_cheaper_method(
    tmp_path, tiny_model_dir, monkeypatch
):
    monkeypatch.setattr(auto_values, "free_memory_bytes", lambda device: 1)  # a machine with no memory left
    recipe = _all_auto_recipe(tmp_path, tiny_model_dir)
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry")])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "not even one example per step fits in memory" in result.output
    assert "qlora" in result.output
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())
    assert not (tmp_path / "registry" / "runs").exists() or not any(
        (tmp_path / "registry" / "runs").iterdir()
    )


def test_a_time_budget_too_short_for_one_step_is_exit_2_with_the_minimum(tmp_path, tiny_model_dir):
    recipe = _all_auto_recipe(tmp_path, tiny_model_dir, extra="  time_budget: 0.0001s\n  batch_size: 8\n")
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry")])
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "too short for one training step" in result.output and "give at least" in result.output
    assert not (tmp_path / "registry" / "runs").exists() or not any(
        (tmp_path / "registry" / "runs").iterdir()
    )


def test_a_bad_time_budget_is_located_exit_2(tmp_path, tiny_model_dir):
    recipe = _all_auto_recipe(tmp_path, tiny_model_dir, extra="  time_budget: 20 minutes\n")
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "recipe.yaml:" in result.output and "training.time_budget" in result.output
    assert "20m, 90s or 1h30m" in result.output


def test_an_all_auto_classification_run_uses_the_classification_rules(tmp_path, tiny_encoder_dir):
    from tests.conftest import classification_rows

    train = write_jsonl(tmp_path / "data" / "train.jsonl", classification_rows(40, seed=1))
    evaluation = write_jsonl(tmp_path / "data" / "eval.jsonl", classification_rows(8, seed=2))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {tiny_encoder_dir}\ntask: classification\ndata:\n  train: {train}\n  eval: {evaluation}\n"
        f"method: lora\nevaluation:\n  compare_base: false\noutput: {tmp_path / 'outputs'}\n"
    )
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 0, result.output
    run = latest_run(tmp_path / "registry")
    training = run["resolved"]["training"]
    # By hand: 40 rows x 3 = 120 seen, within 100-100,000 -> 3 epochs; LoRA with a new head under 100M
    # parameters -> 2e-3; effective batch min(32, power of two <= 40/8 = 5) = 4; the rows are 5-6 tokens, so
    # max_seq_len is the minimum 64 (the encoder's context is 128).
    assert (training["epochs"], training["learning_rate"]) == (3, 2e-3)
    assert (training["batch_size"], training["grad_accum"], training["max_seq_len"]) == (4, 1, 64)
    assert run["metrics"]["train.steps"] == 30  # 3 epochs x 40 / 4
    assert "classification" in run["run"]["auto"]["training.learning_rate"]["rule"]


def test_memory_fit_probes_only_batches_1_and_2_and_extrapolates_linearly():
    from types import SimpleNamespace

    from ftkit.recipe.auto_rules import batch_and_accum

    probed: list[int] = []

    def probe(batch: int):  # measured peaks of a model: 100 bytes fixed + 50 per example
        probed.append(batch)
        return SimpleNamespace(peak_memory_bytes=100 + 50 * batch)

    fit = auto_values.MemoryFit(probe, free_bytes=1000, effective=32)  # 900 usable after the 10 % headroom
    # By hand: 4 x peak(1) = 600 <= 900 fits with no second probe; 16: 150 + 15 x 50 = 900 fits; 32: 1,700 does not.
    assert fit(4) and probed == [1]
    assert batch_and_accum(32, fit).value == (16, 2)
    assert probed == [1, 2]
