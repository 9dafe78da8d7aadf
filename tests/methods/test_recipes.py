"""Every shipped method recipe opens with the command that runs it and validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.recipe.load import load_recipe
from tests.methods.conftest import ALL_METHODS

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_recipe_opens_with_its_command_and_validates(method):
    path = RECIPES / f"{method}.yaml"
    assert path.is_file(), f"recipes/{method}.yaml is missing"
    assert path.read_text().splitlines()[0] == f"# ftkit run recipes/{method}.yaml"
    loaded = load_recipe(path, check_paths=False)
    assert loaded.recipe.method.name == method
    assert loaded.recipe.model.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert loaded.recipe.training.max_steps


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_recipe_passes_ftkit_validate_when_the_quickstart_files_exist(method):
    path = RECIPES / f"{method}.yaml"
    loaded = load_recipe(path, check_paths=False)
    needed = [loaded.resolve_path(loaded.recipe.model), loaded.resolve_path(loaded.recipe.data.train)]
    if not all(p.exists() for p in needed):
        pytest.skip("quickstart model/data not fetched (make quickstart)")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
