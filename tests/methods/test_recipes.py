"""Every shipped recipe (recipes/*.yaml, examples/**/recipe.yaml) opens with its command and passes
`ftkit validate` with every path checked, without the quickstart's model weights.

The recipes point at files that `make quickstart` fetches and writes. The tests copy the recipes into a temporary
tree laid out like the repository, write the data with the quickstart's own generator, and put an empty file
where fetch_model.py unpacks the GGUF model: `ftkit validate` checks that the model file exists and never opens
it, so a bad key, a wrong option or a path that does not lead to the quickstart's files fails here, in CI.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.data.check import check_file
from ftkit.recipe.load import load_recipe
from tests.methods.conftest import ALL_METHODS

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
SHIPPED = sorted(REPO.glob("recipes/*.yaml")) + sorted(REPO.glob("examples/**/recipe.yaml"))
RELATIVE = [str(path.relative_to(REPO)) for path in SHIPPED]
QUICKSTART_DATA = Path("examples/quickstart/data")  # where make_data.py writes by default (see its docstring)


def _fetch_model_target() -> Path:
    """Where fetch_model.py unpacks the model, relative to the repository (read from the script, not copied)."""
    spec = importlib.util.spec_from_file_location("_quickstart_fetch_model", QUICKSTART / "fetch_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines constants and functions only; nothing is downloaded
    return Path(module.TARGET).resolve().relative_to(REPO)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The shipped recipes in the repository's layout, with the quickstart's data and a stand-in model file."""
    root = tmp_path_factory.mktemp("shipped-recipes")
    for relative in RELATIVE:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / relative, root / relative)
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_data.py"), "--out", str(root / QUICKSTART_DATA)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    model = root / _fetch_model_target()
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"")
    return root


def validate(path: Path):
    return CliRunner().invoke(app, ["validate", str(path), "--json"])


def test_every_method_has_a_shipped_recipe():
    assert sorted(path.stem for path in SHIPPED if path.parent.name == "recipes") == sorted(ALL_METHODS)
    assert "examples/quickstart/recipe.yaml" in RELATIVE


@pytest.mark.parametrize("relative", RELATIVE)
def test_shipped_recipe_opens_with_its_command_and_validates_with_paths_checked(tree, relative):
    path = tree / relative
    assert path.read_text().splitlines()[0] == f"# ftkit run {relative}"
    result = validate(path)
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)["resolved"]
    if relative.startswith("recipes/"):
        assert resolved["method"]["name"] == Path(relative).stem
    assert resolved["training"]["max_steps"]
    loaded = load_recipe(path)  # paths checked: data and model resolve to the quickstart's files
    assert loaded.resolve_path(loaded.recipe.model) == (tree / _fetch_model_target()).resolve()
    for key in ("train", "eval"):
        data = loaded.resolve_path(getattr(loaded.recipe.data, key))
        assert data == (tree / QUICKSTART_DATA / f"{key}.jsonl").resolve()
        report = check_file(data, loaded.recipe.data.format)  # the declared format fits the generated rows
        assert report.format == loaded.recipe.data.format and not report.errors, [
            str(p) for p in report.errors
        ]


def test_a_bad_key_or_a_missing_model_in_a_shipped_recipe_fails(tree):
    """The check above is live: the same tree refuses a misspelt key, a wrong method option and a missing model."""
    original = (tree / "recipes" / "lora.yaml").read_text()
    broken = tree / "recipes" / "lora-broken.yaml"
    broken.write_text(original.replace("  r: 16\n", "  rank: 16\n").replace("  seed: 42\n", "  sed: 42\n"))
    result = validate(broken)
    assert result.exit_code == 2
    assert "method.rank" in result.output and "training.sed" in result.output

    model = tree / _fetch_model_target()
    moved = model.with_suffix(".away")
    model.rename(moved)
    try:
        result = validate(tree / "recipes" / "lora.yaml")
    finally:
        moved.rename(model)
    assert result.exit_code == 2 and "GGUF file not found" in result.output
