"""`ftkit run` end to end on a tiny local model: exit codes, JSON output, saved outputs that reload exactly."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import write_jsonl, write_recipe

runner = CliRunner()


def run_cli(args: list[str], registry: Path):
    return runner.invoke(app, [*args, "--registry", str(registry)])


def eval_loss_of(model, output_dir: Path) -> float:
    """Eval loss of a reloaded model over the run's own eval data, computed as ftkit computes it."""
    from transformers import AutoTokenizer

    from ftkit.data.dataset import load_checked
    from ftkit.data.render import render_example
    from ftkit.evaluation.metrics import causal_lm_loss

    resolved = yaml.safe_load((output_dir / "resolved.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    examples = load_checked(Path(resolved["data"]["eval"]), resolved["data"]["format"], {}).examples
    rows = []
    for example in examples:
        rendered = render_example(example.data, tokenizer, resolved["training"]["max_seq_len"])
        rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return causal_lm_loss(model, rows, tokenizer.pad_token_id)["loss"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    """One LoRA run through the CLI, shared by the assertions below."""
    from tests.conftest import chat_rows

    root = tmp_path_factory.mktemp("lora-run")
    train = write_jsonl(root / "data" / "train.jsonl", chat_rows(64, seed=1))
    evaluation = write_jsonl(root / "data" / "eval.jsonl", chat_rows(16, seed=2))
    recipe = write_recipe(root / "recipe.yaml", tiny_model_dir, train, evaluation)
    result = run_cli(["run", str(recipe), "--json"], root / "registry")
    return root, result


def test_run_exits_0_and_prints_one_json_object(lora_run):
    _, result = lora_run
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "succeeded"
    assert set(payload) >= {"run_id", "status", "output_dir", "metrics"}
    assert "Base vs tuned" in result.stderr  # the human summary goes to stderr in --json mode


def test_loss_falls_and_tuned_beats_base(lora_run):
    metrics = json.loads(lora_run[1].stdout)["metrics"]
    assert metrics["train.loss_last"] < metrics["train.loss_first"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"]
    assert metrics["eval.perplexity"] < metrics["base.eval.perplexity"]
    for key in ("train.tokens_per_sec", "run.wall_time_s", "train.peak_memory_mb", "train.trainable_params"):
        assert metrics[key] > 0, key


def test_output_folder_holds_adapter_tokenizer_resolved_and_metrics(lora_run):
    payload = json.loads(lora_run[1].stdout)
    output = Path(payload["output_dir"])
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "resolved.yaml",
        "metrics.json",
    ):
        assert (output / name).is_file(), name
    assert json.loads((output / "metrics.json").read_text())["eval.loss"] == pytest.approx(
        payload["metrics"]["eval.loss"]
    )
    resolved = yaml.safe_load((output / "resolved.yaml").read_text())
    assert resolved["training"]["learning_rate"] == pytest.approx(1e-2)
    assert resolved["training"]["precision"] == "fp32"
    assert resolved["method"] == {
        "name": "lora",
        "r": 8,
        "alpha": 16.0,
        "dropout": 0.05,
        "target_modules": "all-linear",
        "rslora": False,
        "bias": "none",
    }
    assert resolved["data"]["format"] == "chat"
    from transformers import AutoTokenizer

    assert "<|im_start|>" in AutoTokenizer.from_pretrained(output).chat_template


def test_saved_adapter_reloads_to_the_trained_model(lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    payload = json.loads(lora_run[1].stdout)
    output = Path(payload["output_dir"])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), output)
    assert eval_loss_of(model, output) == pytest.approx(payload["metrics"]["eval.loss"], abs=1e-5)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert eval_loss_of(base, output) == pytest.approx(payload["metrics"]["base.eval.loss"], abs=1e-5)


def next_steps_of(stderr: str) -> dict[str, str]:
    """The `Next` block a run ends with: what -> command."""
    lines = stderr.splitlines()
    return dict(
        re.match(r"^  (model|try it|compare|tag it)\s{2,}(.+)$", line).groups()
        for line in lines[lines.index("Next") + 1 :]
        if re.match(r"^  (model|try it|compare|tag it) ", line)
    )


def test_run_ends_with_next_steps_that_work(lora_run):
    """The printed commands run as printed: the model answers, the tag lands on this run."""
    root, result = lora_run
    payload = json.loads(result.stdout)
    steps = next_steps_of(result.stderr)
    assert steps["model"] == payload["output_dir"]
    assert "compare" not in steps  # the first run of this registry has nothing before it
    argv = shlex.split(steps["try it"])
    assert argv[:2] == ["ftkit", "chat"]
    tried = subprocess.run(
        [sys.executable, "-m", "ftkit", *argv[1:]],
        input="Hello!\n",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tried.returncode == 0, tried.stderr[-2000:]
    assert "kernels-community" not in tried.stderr  # peft's import of bitsandbytes stays quiet
    from ftkit.inference import generate, load_trained_model  # what the printed line should have printed

    assert tried.stdout.rstrip("\n") == generate(load_trained_model(payload["output_dir"]), "Hello!")
    tag = shlex.split(steps["tag it"].replace(" NAME", " tried"))
    assert tag[:2] == ["ftkit", "tag"] and tag[-2:] == ["--registry", str(root / "registry")]
    assert runner.invoke(app, tag[1:]).exit_code == 0
    shown = runner.invoke(app, ["show", "tried", "--json", "--registry", str(root / "registry")])
    assert json.loads(shown.stdout)["id"] == payload["run_id"]


def test_full_fine_tune_reloads_with_auto_model(tmp_path, tiny_model_dir, chat_data):
    from transformers import AutoModelForCausalLM

    recipe = write_recipe(
        tmp_path / "full.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"], method="full"
    )
    result = run_cli(["run", str(recipe), "--json", "--set", "training.learning_rate=1e-3"], tmp_path / "reg")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    output = Path(payload["output_dir"])
    assert (output / "model.safetensors").is_file()
    assert payload["metrics"]["train.trainable_fraction"] == 1.0
    model = AutoModelForCausalLM.from_pretrained(output)
    assert eval_loss_of(model, output) == pytest.approx(payload["metrics"]["eval.loss"], abs=1e-5)


def test_same_seed_gives_the_same_run(tmp_path, recipe_file):
    losses = []
    for _ in range(2):
        result = run_cli(["run", str(recipe_file), "--json", "--set", "training.max_steps=4"], tmp_path / "r")
        assert result.exit_code == 0, result.output
        losses.append(json.loads(result.stdout)["metrics"]["train.loss"])
    assert losses[0] == losses[1]
    # the second run of the registry suggests comparing with the first, and the command works
    compare = shlex.split(next_steps_of(result.stderr)["compare"])
    assert compare == ["ftkit", "diff", "@latest~1", "@latest", "--registry", str(tmp_path / "r")]
    assert runner.invoke(app, compare[1:]).exit_code == 0


def test_dry_run_trains_nothing(tmp_path, recipe_file):
    result = run_cli(["run", str(recipe_file), "--dry-run", "--json"], tmp_path / "reg")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    assert plan["format"] == "chat" and plan["train_rows"] == 64 and plan["eval_rows"] == 16
    assert not (recipe_file.parent / "outputs").exists()


def test_bad_data_row_is_exit_2_with_file_and_line(tmp_path, tiny_model_dir, chat_data):
    bad = chat_data["train"].read_text().splitlines()
    bad[4] = '{"messages": [{"role": "user", "content": "hi"}]}'
    chat_data["train"].write_text("\n".join(bad) + "\n")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    result = run_cli(["run", str(recipe)], tmp_path / "reg")
    assert result.exit_code == 2
    assert f"{chat_data['train']}:5:" in result.output
    assert "Traceback" not in result.output


def test_unloadable_model_is_exit_2(tmp_path, chat_data):
    model_dir = tmp_path / "broken-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "no-such-architecture"}')
    recipe = write_recipe(tmp_path / "r.yaml", model_dir, chat_data["train"], chat_data["eval"])
    result = run_cli(["run", str(recipe)], tmp_path / "reg")
    assert result.exit_code == 2, result.output
    assert "cannot load the tokenizer" in result.output or "cannot load model" in result.output


def _ftkit(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "FTKIT_DEBUG": "0"}
    return subprocess.run(
        [sys.executable, "-m", "ftkit", *args], capture_output=True, text=True, env=env, **kwargs
    )


def test_subprocess_run_json_stdout_is_pure_json(tmp_path, recipe_file):
    result = _ftkit(
        "run",
        str(recipe_file),
        "--json",
        "--set",
        "training.max_steps=3",
        "--registry",
        str(tmp_path / "reg"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"


def test_ctrl_c_saves_and_exits_130(tmp_path, recipe_file):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftkit",
            "run",
            str(recipe_file),
            "--json",
            "--set",
            "training.max_steps=100000",
            "--set",
            "training.logging_steps=1",
            "--registry",
            str(tmp_path / "reg"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    seen = ""
    while time.time() < deadline:
        line = process.stderr.readline()
        seen += line
        if line.startswith("step "):
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, seen + stderr
    payload = json.loads(stdout)
    assert payload["status"] == "interrupted"
    assert (Path(payload["output_dir"]) / "adapter_model.safetensors").is_file()
    assert "saved to" in seen + stderr
