"""`ftkit tune DATA --model M` end to end on tiny models: no recipe, the task found from the data, the run recorded
with the generated recipe (so checkout and rerun work on it), and next steps that run as printed."""

from __future__ import annotations

import csv
import json
import random
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
CATEGORIES = ["billing", "shipping", "returns"]


def cli(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def next_steps_of(stderr: str) -> dict[str, str]:
    """The `Next` block's (what, command) pairs, as printed."""
    block = stderr.split("Next\n", 1)[1].splitlines()
    steps = {}
    for line in block:
        if not line.startswith("  "):
            break
        what, _, command = line.strip().partition("  ")
        steps[what] = command.strip()
    return steps


def write_tickets(path: Path, count: int, seed: int = 0) -> list[list[str]]:
    """`text,category` rows whose category is named in the text: a learnable 3-class task."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        category = rng.choice(CATEGORIES)
        rows.append([f"ticket {i} {category} {rng.choice(['help', 'please', 'now'])}", category])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def chat_tune(tmp_path_factory, tiny_model_dir):
    """One tune of chat JSONL (causal-lm) with a saved recipe, shared by the assertions below."""
    root = tmp_path_factory.mktemp("tune-chat")
    train = write_jsonl(root / "train.jsonl", chat_rows(60, seed=1))
    result = runner.invoke(
        app,
        [
            "tune",
            str(train),
            "--model",
            str(tiny_model_dir),
            "--save-recipe",
            str(root / "tuned.yaml"),
            "--set",
            "training.max_steps=6",
            "--registry",
            str(root / "registry"),
            "--json",
        ],
    )
    return root, result


def test_tune_chat_trains_causal_lm_and_records_the_generated_recipe(chat_tune):
    root, result = chat_tune
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "succeeded"
    assert payload["tune"]["task"] == "causal-lm" and payload["tune"]["format"] == "chat"
    assert "base.eval.loss" in payload["metrics"] and "eval.loss" in payload["metrics"]  # evaluated vs base
    plan = payload["tune"]["plan"]  # the plan was shown before training: the method it recommends was trained
    assert plan["recommended"] == payload["tune"]["recipe"]["method"]["name"]
    assert any(c["probe"] and c["seconds_per_step"] > 0 for c in plan["candidates"])
    assert payload["review"] is not None  # the run's review, as `ftkit run` records it
    saved = yaml.safe_load((root / "tuned.yaml").read_text())
    assert saved == payload["tune"]["recipe"]
    assert saved["data"]["eval_split"] == 0.1 and saved["training"]["epochs"] == "auto"
    assert Path(saved["data"]["train"]).is_absolute()
    shown = json.loads(cli("show", payload["run_id"], "--json", "--registry", root / "registry").stdout)
    assert shown["run"]["status"] == "succeeded" and shown["id"] == payload["run_id"]
    assert yaml.safe_load(shown["recipe"]) == saved  # the generated recipe is the run's recipe.yaml


def test_the_saved_recipe_validates_and_checkout_gives_the_same_recipe(chat_tune):
    root, result = chat_tune
    assert cli("validate", root / "tuned.yaml").exit_code == 0
    out = root / "checked-out.yaml"
    checkout = cli(
        "checkout", json.loads(result.stdout)["run_id"], "-o", out, "--registry", root / "registry"
    )
    assert checkout.exit_code == 0, checkout.output
    assert (
        yaml.safe_load(out.read_text())["data"] == yaml.safe_load((root / "tuned.yaml").read_text())["data"]
    )
    assert cli("validate", out).exit_code == 0


def test_rerun_of_a_tune_run_trains_and_the_compare_step_runs(chat_tune):
    root, first = chat_tune
    first_id = json.loads(first.stdout)["run_id"]
    again = cli("rerun", first_id, "--set", "training.max_steps=2", "--registry", root / "registry")
    assert again.exit_code == 0, again.output
    steps = next_steps_of(again.stderr or again.output)
    compare = shlex.split(steps["compare"])
    assert compare[:2] == ["ftkit", "diff"]
    diff = cli(*compare[1:], "--json")
    assert diff.exit_code == 0, diff.output
    assert first_id in diff.stdout  # the run before this one is the tune run


def test_tune_prints_next_steps_with_a_checkout_of_the_recipe(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the printed checkout writes recipe.yaml in the working directory
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(40, seed=3))
    registry = tmp_path / "registry"
    result = cli(
        "tune", train, "--model", tiny_model_dir, "--set", "training.max_steps=2", "--registry", registry
    )
    assert result.exit_code == 0, result.output
    steps = next_steps_of(result.stdout)
    assert {"model", "try it", "tag it", "recipe"} <= set(steps)
    recipe = shlex.split(steps["recipe"])
    assert recipe[:2] == ["ftkit", "checkout"]
    assert cli(*recipe[1:]).exit_code == 0
    assert cli("validate", tmp_path / "recipe.yaml").exit_code == 0
    tag = shlex.split(steps["tag it"].replace(" NAME", " mine"))
    assert cli(*tag[1:]).exit_code == 0


def test_text_and_category_csv_is_classification_with_that_mapping(tmp_path, tiny_encoder_dir):
    rows = write_tickets(tmp_path / "tickets.csv", 80)
    registry = tmp_path / "registry"
    result = cli(
        "tune", tmp_path / "tickets.csv", "--model", tiny_encoder_dir, "--set", "training.max_steps=4",
        "--registry", registry, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    tuned = payload["tune"]
    assert tuned["task"] == "classification" and tuned["format"] == "classification"
    assert tuned["columns"] == {"label": "category"}
    assert f"{len(Counter(r[1] for r in rows))} distinct values over 80 rows" in tuned["reason"]
    assert "`category` looks like class labels" in result.stderr
    assert "base.eval.accuracy" in payload["metrics"] and "eval.accuracy" in payload["metrics"]
    labels = json.loads((Path(payload["output_dir"]) / "labels.json").read_text())
    assert sorted(labels) == sorted(CATEGORIES)
    argv = shlex.split(next_steps_of(result.stderr)["try it"])  # the classification "try it" runs
    tried = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=600)
    assert tried.returncode == 0, tried.stderr[-2000:]
    assert tried.stdout.strip() in CATEGORIES


def test_task_causal_lm_overrides_and_warns_that_category_is_unused(tmp_path, tiny_model_dir):
    write_tickets(tmp_path / "tickets.csv", 40)
    result = cli(
        "tune", tmp_path / "tickets.csv", "--model", tiny_model_dir, "--task", "causal-lm", "--dry-run",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["tune"]["task"] == "causal-lm" and payload["tune"]["format"] == "text"
    assert payload["tune"]["unused_columns"] == ["category"]
    assert "column `category` is not used by the text format" in result.stderr


def test_run_with_format_text_warns_that_category_is_unused(tmp_path, tiny_model_dir):
    write_tickets(tmp_path / "tickets.csv", 40)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {tiny_model_dir}\ndata:\n  train: tickets.csv\n  format: text\n"
        "training:\n  max_steps: 1\n  batch_size: 4\n  grad_accum: 1\n  max_seq_len: 64\n  epochs: 1\n"
        "evaluation:\n  compare_base: false\n"
        f"output: {tmp_path / 'outputs'}\n"
    )
    result = cli("run", recipe, "--registry", tmp_path / "registry")
    assert result.exit_code == 0, result.output
    assert "column `category` is not used by the text format" in result.output
    assert "--format classification --columns label=category" in result.output


def test_a_named_method_is_the_only_one_the_plan_probes(tmp_path, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(40, seed=5))
    result = cli("tune", train, "--model", tiny_model_dir, "--method", "lora", "--dry-run", "--json",
                 "--registry", tmp_path / "registry")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["tune"]["plan"]
    assert [c["method"] for c in plan["candidates"]] == ["lora"] and plan["candidates"][0]["probe"]
    assert plan["recommended"] == "lora"
