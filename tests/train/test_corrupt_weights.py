"""Issue 11 §6: a damaged safetensors file (truncated, or garbage where the header is) is a located error naming
the file and what to do, exit 2; never "unexpected internal error" nor a run recorded as failed. Both for the base
model a run loads and for a trained run's adapter loaded back with ftkit.inference."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import ModelError
from ftkit.inference import load_trained_model
from tests.conftest import write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()


def truncate(path: Path) -> None:
    """Cut the file in half: the header promises tensors the file no longer holds."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)


def garble_header(path: Path) -> None:
    """Overwrite the header's length and start with text, as a bad copy or an editor would."""
    with path.open("r+b") as handle:
        handle.write(b"garbage! not a safetensors header")


DAMAGE = {"truncated": truncate, "garbled": garble_header}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_base_model_is_a_located_error(tmp_path, tiny_model_dir, chat_data, damage):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    weights = model / "model.safetensors"
    DAMAGE[damage](weights)
    recipe = write_recipe(tmp_path / "recipe.yaml", model, chat_data["train"], chat_data["eval"])
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"{weights} is damaged" in message
    assert "hint:" in message and "copy or download it again" in message
    assert "unexpected internal error" not in message and "run failed" not in message
    assert "evaluating the base model" not in result.output


@pytest.fixture(scope="module")
def trained_output(tmp_path_factory, tiny_model_dir) -> Path:
    """The output folder of a two-step LoRA run."""
    from tests.conftest import chat_rows, write_jsonl

    root = tmp_path_factory.mktemp("adapter-run")
    train = write_jsonl(root / "train.jsonl", chat_rows(16, seed=1))
    recipe = write_recipe(root / "recipe.yaml", tiny_model_dir, train)
    recipe.write_text(recipe.read_text().replace("max_steps: 12", "max_steps: 2"))
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(root / "registry")])
    assert result.exit_code == 0, result.output
    (output,) = (root / "outputs").iterdir()
    return output


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_adapter_is_a_located_error_on_reload(tmp_path, trained_output, damage):
    output = shutil.copytree(trained_output, tmp_path / "output")
    load_trained_model(output)  # intact, it loads
    adapter = output / "adapter_model.safetensors"
    DAMAGE[damage](adapter)
    with pytest.raises(ModelError) as caught:
        load_trained_model(output)
    assert f"{adapter} is damaged" in caught.value.message
    assert "objects/sha256" in caught.value.hint and "ftkit rerun" in caught.value.hint
