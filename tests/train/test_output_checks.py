"""Issue 11 §6: an output folder ftkit cannot write is found before the model is loaded and the base evaluated:
exit 2, naming the folder and the recipe's `output` key. Read-only is made real: root ignores permission bits,
so the folder is a read-only tmpfs mount (or immutable with chattr +i); without either the test says why it skips."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import write_recipe

runner = CliRunner()


def _make_read_only(path: Path) -> list[str] | None:
    """Make `path` read-only for this process; returns the command that undoes it, or None when impossible."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return ["chmod", "755", str(path)]
    for make, undo in (
        (["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], ["umount", str(path)]),
        (["chattr", "+i", str(path)], ["chattr", "-i", str(path)]),
    ):
        try:
            done = subprocess.run(make, capture_output=True).returncode == 0
        except FileNotFoundError:
            done = False
        if done and not os.access(path, os.W_OK):
            return undo
        if done:
            subprocess.run(undo, capture_output=True)
    return None


@pytest.fixture
def read_only(tmp_path) -> Path:
    path = tmp_path / "read-only"
    path.mkdir()
    undo = _make_read_only(path)
    if undo is None:
        pytest.skip("cannot make a read-only folder here: running as root without mount or chattr +i rights")
    yield path
    subprocess.run(undo, capture_output=True, check=True)


def _run(recipe: Path, tmp_path: Path, *extra: str):
    return runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry"), *extra])


def _output_line(recipe: Path) -> int:
    return next(i for i, line in enumerate(recipe.read_text().splitlines(), 1) if line.startswith("output:"))


def _assert_stopped_before_loading(result) -> None:
    assert result.exit_code == 2, result.output
    assert "loading" not in result.output and "evaluating the base model" not in result.output
    assert "unexpected internal error" not in result.output


def test_a_read_only_output_folder_stops_the_run_before_loading(
    tmp_path, read_only, tiny_model_dir, chat_data
):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    recipe.write_text(recipe.read_text().replace(f"output: {tmp_path / 'outputs'}", f"output: {read_only}"))
    result = _run(recipe, tmp_path)
    _assert_stopped_before_loading(result)
    message = " ".join(result.stderr.split())
    assert f"{recipe}:{_output_line(recipe)}: output: {read_only}: is not writable" in message


def test_an_output_inside_a_read_only_folder_is_found_too(tmp_path, read_only, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    wanted = read_only / "runs" / "outputs"
    result = _run(recipe, tmp_path, "--set", f"output={wanted}")
    _assert_stopped_before_loading(result)
    message = " ".join(result.stderr.split())
    assert f"--set output: output: {wanted}: cannot be created: {read_only} is not writable" in message


def test_a_file_in_the_way_of_the_output_folder(tmp_path, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    (tmp_path / "outputs").write_text("not a folder")
    result = _run(recipe, tmp_path, "--json")
    _assert_stopped_before_loading(result)
    assert f"output: {tmp_path / 'outputs'}: is a file, not a folder" in result.stdout


def test_a_writable_output_is_not_created_by_the_check(tmp_path, tiny_model_dir, chat_data):
    """The check only looks: a run that stops on its data afterwards leaves no output folder behind."""
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, broken)
    result = _run(recipe, tmp_path)
    assert result.exit_code == 2 and "invalid JSON" in result.output
    assert not (tmp_path / "outputs").exists()
