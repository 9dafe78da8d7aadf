"""Recipe files ftkit cannot read as text, and `--set` keys it cannot split: located errors with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import ExitCode, RecipeError
from ftkit.recipe.load import load_recipe

RECIPE = """\
# Réglages: a comment with a non-ASCII letter
model: ./model
data:
  train: train.jsonl
"""

runner = CliRunner()


def test_utf16_recipe_is_a_located_encoding_error(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(RECIPE.encode("utf-16"))  # Python writes a byte order mark first
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert caught.value.message.startswith(f"{path}:1: ")
    assert "UTF-16" in caught.value.message
    assert "UTF-8" in caught.value.hint

    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "unexpected internal error" not in result.stderr
    assert "UTF-16" in result.stderr


def test_latin1_recipe_names_the_line_and_the_byte(tmp_path):
    path = tmp_path / "recipe.yaml"
    data = ("name: demo\n" + RECIPE).encode("latin-1")
    path.write_bytes(data)
    offset = data.index("é".encode("latin-1"))  # the first byte that is not UTF-8: é is 0xe9 in latin-1
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert caught.value.message.startswith(f"{path}:2: ")  # é sits on the file's second line
    assert f"byte 0xe9 at offset {offset}" in caught.value.message

    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "save the recipe as UTF-8" in " ".join(result.stderr.split())


@pytest.mark.parametrize("override", ["a..b=1", ".a=1", "training.=1"])
def test_set_key_with_an_empty_part_blames_the_set_option(tmp_path, override):
    path: Path = tmp_path / "recipe.yaml"
    path.write_text("model: ./model\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, [override])
    assert caught.value.message.startswith(f"--set {override}: ")
    assert str(path) not in caught.value.message
    assert "empty part" in caught.value.message

    result = runner.invoke(app, ["validate", str(path), "--set", override])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"--set {override}" in result.stderr
