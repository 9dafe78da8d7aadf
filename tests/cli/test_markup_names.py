"""Issue 11 §6: user text that looks like rich markup (`[/bold]x[red]`) is printed as written, never parsed:
no MarkupError, no styling. One real run is recorded with such a name, model folder and data folder; every
command that prints them runs in terminal mode (where markup would be rendered) and must show them literally."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, classification_rows, write_jsonl, write_recipe

NAME = "[/bold]x[red]"
MODEL_DIR = "m[red]odel"  # no slash: a folder name
DATA_DIR = "d[bold]ata"

runner = CliRunner()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, tiny_model_dir):
    """(root, registry, recipe) after one `ftkit run` of a recipe named NAME."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("markup")
    model = shutil.copytree(tiny_model_dir, root / MODEL_DIR)
    train = write_jsonl(root / DATA_DIR / "train.jsonl", chat_rows(32, seed=1))
    evaluation = write_jsonl(root / DATA_DIR / "eval.jsonl", chat_rows(8, seed=2))
    recipe = write_recipe(root / "recipe.yaml", model, train, evaluation)
    recipe.write_text(recipe.read_text().replace("name: tiny-demo", f"name: '{NAME}'").replace("12", "3"))
    registry = root / "registry"
    result = invoke(["run", str(recipe), "--registry", str(registry)], root)
    torch.set_num_threads(threads)
    return root, registry, recipe, result


def invoke(args: list[str], root: Path):
    env = {"TTY_COMPATIBLE": "1", "COLUMNS": "250", "FTKIT_REGISTRY": None}
    return runner.invoke(app, args, env=env)


def test_run_prints_the_name_and_paths_literally(recorded):
    root, _, _, result = recorded
    assert result.exit_code == 0, result.output
    assert f"({NAME})" in result.output
    assert str(root / MODEL_DIR) in result.output
    assert "MarkupError" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["runs", "--all"],
        ["show", "@latest"],
        ["log"],
        ["diff", "@latest", "@latest"],
        ["checkout", "@latest", "-o", "{root}/out.yaml", "--force"],
    ],
    ids=lambda args: args[0] + ("-all" if "--all" in args else ""),
)
def test_every_command_shows_the_name_literally(recorded, args):
    root, registry, _, _ = recorded
    args = [arg.replace("{root}", str(root)) for arg in args]
    result = invoke([*args, "--registry", str(registry)], root)
    assert result.exit_code == 0, result.output
    assert NAME in result.output, result.output


def test_tag_and_untag_print_the_run_plainly(recorded):
    root, registry, _, _ = recorded
    tagged = invoke(["tag", "@latest", "best", "--registry", str(registry)], root)
    assert tagged.exit_code == 0, tagged.output
    shown = invoke(["runs", "--registry", str(registry)], root)
    assert NAME in shown.output and "best" in shown.output
    assert invoke(["untag", "best", "--registry", str(registry)], root).exit_code == 0


def test_rerun_prints_the_name_literally(recorded):
    root, registry, _, _ = recorded
    result = invoke(
        ["rerun", "@latest", "--original", "--set", "training.max_steps=1", "--registry", str(registry)], root
    )
    assert result.exit_code == 0, result.output
    assert f"({NAME})" in result.output


def test_errors_echo_user_text_literally(recorded):
    root, registry, _, _ = recorded
    result = invoke(["show", "[red]nosuch", "--registry", str(registry)], root)
    assert result.exit_code == 2
    assert "[red]nosuch" in result.output
    result = invoke(["tag", "@latest", "x[red]y", "--registry", str(registry)], root)
    assert result.exit_code == 2
    assert "x[red]y" in result.output


def test_validate_prints_the_recipe_path_and_model_literally(recorded):
    root, _, recipe, _ = recorded
    marked = shutil.copy(recipe, root / "r[red]ecipe.yaml")
    result = invoke(["validate", str(marked)], root)
    assert result.exit_code == 0, result.output
    assert str(marked) in result.output
    assert str(root / MODEL_DIR) in result.output


def test_data_check_prints_a_markup_label_literally(tmp_path):
    rows = classification_rows(20)
    for row in rows:
        row["label"] = "[/bold]" if row["label"] == "warm" else row["label"]
    rows[0]["label"] = "[/bold]"  # the preview shows the first row and names its label
    data = write_jsonl(tmp_path / "d[red]x" / "labels.jsonl", rows)
    result = invoke(["data", "check", str(data)], tmp_path)
    assert result.exit_code == 0, result.output
    assert "'[/bold]'" in result.output  # the preview names the label
    assert str(data) in result.output
    as_json = invoke(["data", "check", str(data), "--json"], tmp_path)
    assert json.loads(as_json.stdout)["format"] == "classification"
