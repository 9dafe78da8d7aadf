"""Issue 11 §1: the run's output folder holds no planted secret (its `resolved.yaml` is scrubbed where it is
written), and the saved model still reloads to what training produced. When the scrubbed value is one reloading
needs (the base model's path), the reload error says so and what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import ModelError
from ftkit.inference import load_trained_model
from tests.conftest import chat_rows, write_jsonl, write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENV_VALUE = "OutputEnvSecret4Q9Z7"
NAME_TOKEN = "hf_OutputNameTok5t7y9u1i3o"
runner = CliRunner()


def _run(recipe: Path, registry: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["run", str(recipe), "--json", "--registry", str(registry), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _folder_text(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def _eval_loss(model, tokenizer, eval_path: Path, max_seq_len: int) -> float:
    """Eval loss of a reloaded model over the run's eval file, computed as ftkit's evaluation computes it."""
    from ftkit.data.dataset import load_checked
    from ftkit.data.render import render_example
    from ftkit.evaluation.metrics import causal_lm_loss

    rows = []
    for example in load_checked(eval_path, "chat", {}).examples:
        rendered = render_example(example.data, tokenizer, max_seq_len)
        rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return causal_lm_loss(model, rows, tokenizer.pad_token_id)["loss"]


def test_output_folder_holds_no_secret_and_reloads_as_trained(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("WANDB_API_KEY", ENV_VALUE)
    data = tmp_path / f"data-{ENV_VALUE}"  # a folder named after a secret environment value
    train = write_jsonl(data / "train.jsonl", chat_rows(64, seed=1))
    evaluation = write_jsonl(data / "eval.jsonl", chat_rows(16, seed=2))
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, train, evaluation)
    payload = _run(recipe, tmp_path / "registry", "--set", f"name=run-{NAME_TOKEN}")
    output = Path(payload["output_dir"])

    text = _folder_text(output)
    assert ENV_VALUE not in text and NAME_TOKEN not in text
    resolved = yaml.safe_load((output / "resolved.yaml").read_text())
    assert resolved["data"]["train"] == str(tmp_path / "data-***redacted***" / "train.jsonl")
    assert resolved["name"] == "run-***redacted***"
    assert resolved["model"] == str(tiny_model_dir)  # what reloading needs is kept

    trained = load_trained_model(output)
    reloaded = _eval_loss(trained.model, trained.tokenizer, evaluation, resolved["training"]["max_seq_len"])
    assert reloaded == pytest.approx(payload["metrics"]["eval.loss"], rel=1e-5)


def test_a_redacted_base_model_is_named_in_the_reload_error(tmp_path, monkeypatch, tiny_model_dir, chat_data):
    monkeypatch.setenv("WANDB_API_KEY", ENV_VALUE)
    model = shutil.copytree(tiny_model_dir, tmp_path / f"model-{ENV_VALUE}")
    recipe = write_recipe(tmp_path / "recipe.yaml", model, chat_data["train"], chat_data["eval"])
    recipe.write_text(recipe.read_text().replace("max_steps: 12", "max_steps: 2"))
    output = Path(_run(recipe, tmp_path / "registry")["output_dir"])
    assert ENV_VALUE not in (output / "resolved.yaml").read_text()

    with pytest.raises(ModelError) as caught:
        load_trained_model(output)
    assert f"{output / 'resolved.yaml'}: model:" in caught.value.message
    assert "redacted" in caught.value.message
    assert "model:" in caught.value.hint

    # the fix the hint gives works: put the base model back, and it loads
    resolved = output / "resolved.yaml"
    resolved.write_text(resolved.read_text().replace(f"model-{'***redacted***'}", model.name))
    assert load_trained_model(output).resolved["model"] == str(model)
