"""The resolved recipe: `auto` rules, decided settings, paths made absolute, and a config hash that ignores only
the run's name and output folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from ftkit.methods.catalog import get_method
from ftkit.recipe.load import load_recipe
from ftkit.recipe.resolve import config_hash, resolve_recipe

DECIDED = {"precision": "fp32", "gradient_checkpointing": False, "device": "cpu", "padding_free": True}


def _project(tmp_path: Path, training: str, model: str = "models/tiny") -> Path:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "train.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "models" / "tiny").mkdir(parents=True, exist_ok=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text('{"model_type": "llama"}')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: demo\nmodel: {model}\ndata:\n  train: data/train.jsonl\n  eval_split: 0.2\n"
        f"method:\n  name: lora\n  r: 4\ntraining:\n{training}output: out/\n"
    )
    return recipe


def _resolve(recipe: Path, train_rows: int, method: str = "lora") -> dict:
    loaded = load_recipe(recipe)
    return resolve_recipe(
        loaded, get_method(method), data_format="text", train_rows=train_rows, decided=DECIDED
    )


def test_auto_values_follow_the_data_size_and_the_method(tmp_path):
    recipe = _project(tmp_path, "  epochs: auto\n  learning_rate: auto\n  batch_size: auto\n")
    # 5 rows: 15 seen < 100 -> floor(100/5) = 20 epochs; effective batch: power of two <= 5/8 -> 1;
    # LoRA with the model's size not measured: the smallest band's 1e-3
    small = _resolve(recipe, train_rows=5)["training"]
    assert (small["epochs"], small["batch_size"], small["grad_accum"], small["learning_rate"]) == (
        20,
        1,
        1,
        1e-3,
    )
    # 10,000 rows: 30,000 > 25,000 -> floor(25,000/10,000) = 2 epochs; batch 16 (no memory probe: all fits)
    large = _resolve(recipe, train_rows=10_000)["training"]
    assert (large["epochs"], large["batch_size"], large["grad_accum"]) == (2, 16, 1)
    assert _resolve(recipe, train_rows=2_000)["training"]["epochs"] == 3


def test_given_values_are_kept_and_a_given_batch_is_the_effective_batch(tmp_path):
    recipe = _project(tmp_path, "  epochs: 1\n  batch_size: 4\n  max_seq_len: 96\n")
    training = _resolve(recipe, train_rows=10_000)["training"]
    assert (training["epochs"], training["batch_size"], training["grad_accum"], training["max_seq_len"]) == (
        1,
        4,
        1,
        96,
    )


def test_given_values_stay_and_the_decided_settings_are_recorded(tmp_path):
    recipe = _project(tmp_path, "  epochs: 2\n  learning_rate: 1.0e-3\n  batch_size: 4\n  precision: auto\n")
    resolved = _resolve(recipe, train_rows=5000)
    training = resolved["training"]
    assert (training["epochs"], training["learning_rate"], training["batch_size"]) == (2, 1e-3, 4)
    assert {key: training[key] for key in DECIDED} == DECIDED
    assert resolved["method"]["name"] == "lora" and resolved["method"]["r"] == 4
    assert resolved["data"]["format"] == "text"


def test_local_paths_become_absolute_and_hub_ids_stay(tmp_path):
    resolved = _resolve(_project(tmp_path, "  epochs: 1\n"), train_rows=5)
    assert resolved["model"] == str(tmp_path / "models" / "tiny")
    assert resolved["data"]["train"] == str(tmp_path / "data" / "train.jsonl")
    assert resolved["output"] == str(tmp_path / "out")
    hub = _resolve(_project(tmp_path, "  epochs: 1\n", model="HuggingFaceTB/SmolLM2-135M"), train_rows=5)
    assert hub["model"] == "HuggingFaceTB/SmolLM2-135M"


def _resolved_twice(tmp_path: Path, training: str) -> tuple[dict, dict]:
    """A recipe resolved, then its resolved.yaml loaded from another folder and resolved again."""
    first = _resolve(_project(tmp_path / "a", training), train_rows=5)
    elsewhere = tmp_path / "b" / "resolved.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(yaml.safe_dump(first, sort_keys=False))
    return first, _resolve(elsewhere, train_rows=5)


def test_the_resolved_recipe_is_a_recipe_that_resolves_to_the_same_hash_elsewhere(tmp_path):
    first, again = _resolved_twice(tmp_path, "  epochs: 2\n  learning_rate: auto\n  batch_size: auto\n")
    assert again == first
    assert config_hash(again) == config_hash(first)


def test_auto_epochs_resolve_to_the_value_a_reload_gives(tmp_path):
    first, again = _resolved_twice(tmp_path, "  epochs: auto\n")
    assert config_hash(again) == config_hash(first)


def test_config_hash_ignores_name_and_output_only():
    resolved = {"name": "a", "output": "/x", "model": "m", "training": {"seed": 1}}
    # sha256 of the sorted-key JSON of everything but name and output: the format registries already hold
    assert config_hash(resolved) == hashlib.sha256(b'{"model": "m", "training": {"seed": 1}}').hexdigest()
    assert config_hash({**resolved, "name": "b", "output": "/y"}) == config_hash(resolved)
    assert config_hash({**resolved, "training": {"seed": 2}}) != config_hash(resolved)
