"""`ftkit methods` and `ftkit methods show`: tables, JSON, missing requirements, and no torch import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.methods import registry
from ftkit.methods.base import Method, MethodOptions
from tests.methods.conftest import ALL_METHODS, MERGEABLE

runner = CliRunner()


def test_methods_json_lists_the_eight_builtins_with_their_facts():
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    by_name = {item["name"]: item for item in listed}
    assert set(ALL_METHODS) <= set(by_name)
    assert [item["name"] for item in listed][:8] == list(registry.BUILTIN_METHODS)
    for name, item in by_name.items():
        if name not in ALL_METHODS:
            continue
        assert item["description"] and item["typical_trainable"]
        assert item["mergeable"] is (name in MERGEABLE)
        assert item["source"] == "built-in"
    assert by_name["qlora"]["requirements"] == [
        {"module": "bitsandbytes", "installed": importlib.util.find_spec("bitsandbytes") is not None}
    ]
    assert by_name["full"]["adapter"] is False and by_name["lora"]["adapter"] is True


@pytest.fixture
def wide_console(monkeypatch):
    """The output consoles are created at import, so COLUMNS set later does not widen them."""
    from ftkit.cli import _output

    for console in (_output._stdout, _output._stderr):
        monkeypatch.setattr(console, "_width", 200)


def test_methods_table_shows_every_method(wide_console):
    result = runner.invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ALL_METHODS:
        assert f"│ {name} " in result.output
    assert "bitsandbytes (installed)" in result.output


@pytest.mark.parametrize("name", ALL_METHODS)
def test_methods_show_json_gives_every_option_with_type_default_and_help(name):
    result = runner.invoke(app, ["methods", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    method = registry.get_method(name)
    assert shown["name"] == name
    assert [option["name"] for option in shown["options"]] == list(method.options_model.model_fields)
    for option in shown["options"]:
        assert option["type"] and option["help"]
        field = method.options_model.model_fields[option["name"]]
        if not field.is_required() and field.default_factory is None:
            assert option["default"] == field.default


def test_methods_show_prints_types_defaults_and_help(wide_console):
    result = runner.invoke(app, ["methods", "show", "qlora"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "quant_type" in result.output and "nf4 | fp4" in result.output
    assert "str | list[str]" in result.output  # rich markup must not eat [str]
    assert "4-bit data type of the frozen base." in result.output


def test_methods_show_unknown_is_exit_2_with_suggestion():
    result = runner.invoke(app, ["methods", "show", "qlora2"])
    assert result.exit_code == 2
    assert "did you mean `qlora`" in result.output


class _NeedsMissing(Method):
    name = "needs-missing"
    description = "Test method whose requirement is not installed."
    options_model = MethodOptions
    requires = ("ftkit_test_module_that_does_not_exist",)
    install_hint = "pip install ftkit-test-extra"


def test_missing_requirement_is_listed_with_the_install_command():
    registry.register_method(_NeedsMissing)
    try:
        result = runner.invoke(app, ["methods", "--json"])
        item = {i["name"]: i for i in json.loads(result.stdout)}["needs-missing"]
        assert item["ready"] is False
        assert item["install"] == "pip install ftkit-test-extra"
        assert item["requirements"] == [
            {"module": "ftkit_test_module_that_does_not_exist", "installed": False}
        ]
    finally:
        registry._registered.pop("needs-missing")


def test_methods_commands_do_not_import_torch():
    probe = (
        "import sys\nfrom ftkit.cli.app import app\n"
        "for args in (['methods'], ['methods', '--json'], ['methods', 'show', 'qlora', '--json']):\n"
        "    try:\n        app(args=args, prog_name='ftkit')\n    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'bitsandbytes') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "HEAVY=\n" in result.stdout, result.stdout[-500:] + result.stderr[-2000:]
