"""A third-party method, packaged and installed on its own, runs through `ftkit run` without changing ftkit.

The package is built and installed by pip into a temporary target folder put on PYTHONPATH, so the test
environment itself is never modified; ftkit finds the method through the `ftkit.methods` entry-point group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.methods.conftest import method_recipe

pytestmark = pytest.mark.slow

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "ftkit-headonly"
version = "0.1.0"

[tool.setuptools]
py-modules = ["ftkit_headonly"]

[project.entry-points."ftkit.methods"]
headonly = "ftkit_headonly:HeadOnly"
"""

MODULE = '''
"""A third-party ftkit method: train only the output head."""
from pathlib import Path
from typing import Any

from pydantic import Field

from ftkit.methods.base import Method, MethodOptions


class HeadOnlyOptions(MethodOptions):
    head: str = Field("lm_head", description="Name of the output module to train.")


class HeadOnly(Method):
    name = "headonly"
    description = "Train only the output head (third-party example)."
    options_model = HeadOnlyOptions
    is_adapter = False
    typical_trainable = "~1%"
    default_learning_rate = 1e-2

    def prepare(self, model: Any, options: HeadOnlyOptions, task: str) -> Any:
        model.requires_grad_(False)
        getattr(model, options.head).requires_grad_(True)
        return model

    def load_trained(self, base_model: Any, output_dir: Path, model_class: Any = None) -> Any:
        return model_class.from_pretrained(str(output_dir))
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    package = root / "ftkit-headonly"
    package.mkdir()
    (package / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (package / "ftkit_headonly.py").write_text(textwrap.dedent(MODULE))
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(package)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    assert (site / "ftkit_headonly.py").is_file()
    assert list(site.glob("ftkit_headonly-0.1.0.dist-info/entry_points.txt"))
    return site


def ftkit(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "ftkit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_plugin_is_listed_and_documented(plugin_site, tmp_path):
    listed = ftkit(["methods", "--json"], plugin_site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    by_name = {item["name"]: item for item in json.loads(listed.stdout)}
    assert by_name["headonly"]["source"] == "plug-in"
    assert len(by_name) == 9  # the eight built-ins and the plug-in
    shown = ftkit(["methods", "show", "headonly", "--json"], plugin_site, tmp_path)
    options = json.loads(shown.stdout)["options"]
    assert options == [
        {"name": "head", "type": "str", "default": "lm_head", "required": False,
         "help": "Name of the output module to train."}
    ]  # fmt: skip


def test_plugin_runs_through_ftkit_run(plugin_site, tmp_path, tiny_model_dir, method_data):
    from safetensors.torch import load_file

    recipe = method_recipe(tmp_path, tiny_model_dir, method_data, "full")
    text = recipe.read_text().replace("name: full\n", "name: headonly\n  head: lm_head\n")
    recipe.write_text(text.replace("generate: 2", "generate: 0"))
    result = ftkit(
        ["run", str(recipe), "--json", "--registry", str(tmp_path / "registry")], plugin_site, tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded"
    metrics = run["metrics"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"]
    assert 0 < metrics["train.trainable_fraction"] < 0.5
    saved = load_file(str(Path(run["output_dir"]) / "model.safetensors"))
    original = load_file(str(tiny_model_dir / "model.safetensors"))
    changed = {name for name, tensor in saved.items() if not (tensor == original[name]).all()}
    assert changed == {"lm_head.weight"}

    # A bad option for the plug-in is located and lists the plug-in's own options.
    bad = ftkit(["validate", str(recipe), "--set", "method.r=4"], plugin_site, tmp_path)
    assert bad.returncode == 2
    assert "method.r: unknown key" in bad.stderr and "name (headonly), head" in bad.stderr
