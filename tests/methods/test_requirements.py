"""A method whose requirement is missing stops the run with exit 2 and the install command, before any model is
loaded (and before data is read)."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.methods import catalog
from ftkit.methods.base import Method, MethodOptions
from tests.methods.conftest import method_recipe

runner = CliRunner()


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail loudly if anything tries to load a model or tokenizer."""
    import ftkit.train.model_loading as model_loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the requirement check")

    monkeypatch.setattr(model_loading, "load_model", refuse)
    monkeypatch.setattr(model_loading, "load_tokenizer", refuse)


def test_qlora_without_bitsandbytes_is_exit_2_with_install_command(
    tmp_path, monkeypatch, tiny_model_dir, method_data, no_model_loading
):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name.split(".")[0] == "bitsandbytes" else real_find_spec(name, *args),
    )
    recipe = method_recipe(tmp_path, tiny_model_dir, method_data, "qlora")
    result = runner.invoke(app, ["run", str(recipe), "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 2, result.output
    assert "method `qlora` needs bitsandbytes, which is not installed" in result.output
    assert "pip install 'ftkit[qlora]'" in result.output and "pip install bitsandbytes" in result.output

    listed = runner.invoke(app, ["methods", "show", "qlora", "--json"])
    assert '"installed": false' in listed.stdout


class _RealMissing(Method):
    name = "needs-real-missing"
    description = "Requires a module that really is not installed."
    options_model = MethodOptions
    requires = ("ftkit_surely_not_installed_module",)


def test_a_really_missing_module_stops_the_run_too(
    tmp_path, tiny_model_dir, method_data, no_model_loading, monkeypatch
):
    monkeypatch.setitem(catalog.BUILTIN_METHODS, "needs-real-missing", f"{__name__}:_RealMissing")
    recipe = method_recipe(tmp_path, tiny_model_dir, method_data, "full")
    result = runner.invoke(
        app,
        ["run", str(recipe), "--set", "method.name=needs-real-missing", "--registry", str(tmp_path / "reg")],
    )
    assert result.exit_code == 2, result.output
    assert "pip install ftkit_surely_not_installed_module" in result.output
