"""`ftkit methods` and `ftkit methods show`: tables, JSON, missing requirements, and no torch import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.methods import catalog
from ftkit.methods.base import Method, MethodOptions
from tests.methods.conftest import ALL_METHODS, MERGEABLE

runner = CliRunner()
TYPICAL_TRAINABLE = {
    "lora": "0.5-4%",
    "dora": "0.5-4%",
    "qlora": "0.5-4%",
    "prefix": "0.1-1%",
    "prompt": "<0.1%",
    "ia3": "<0.1%",
    "full": "100%",
    "freeze": "5-30%",
}


def test_methods_json_lists_the_eight_builtins_with_their_facts():
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    by_name = {item["name"]: item for item in listed}
    assert set(ALL_METHODS) <= set(by_name)
    assert [item["name"] for item in listed][:8] == list(ALL_METHODS)
    for name in ALL_METHODS:
        item = by_name[name]
        assert item["description"].strip()
        assert item["typical_trainable"] == TYPICAL_TRAINABLE[name]
        assert item["mergeable"] is (name in MERGEABLE)
        assert item["adapter"] is (name not in ("full", "freeze"))
        assert item["source"] == "built-in"
    assert by_name["qlora"]["requirements"] == [
        {"module": "bitsandbytes", "installed": importlib.util.find_spec("bitsandbytes") is not None}
    ]


def test_methods_table_shows_every_method():
    result = runner.invoke(app, ["methods"])  # piped: one tab-separated row per method, under a header
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split("\t") == ["method", "mergeable", "trains", "needs", "description"]
    assert [row.split("\t")[0] for row in rows] == list(ALL_METHODS)
    qlora = rows[list(ALL_METHODS).index("qlora")].split("\t")
    installed = "installed" if importlib.util.find_spec("bitsandbytes") else "missing"
    assert qlora[:4] == ["qlora", "yes", TYPICAL_TRAINABLE["qlora"], f"bitsandbytes ({installed})"]


LORA_OPTIONS = [
    ("r", "int | auto", "auto"),
    ("alpha", "float | null", None),
    ("dropout", "float", 0.05),
    ("target_modules", "str | list[str]", "all-linear"),
    ("rslora", "bool", False),
    ("bias", "none | all | lora_only", "none"),
]
# What `ftkit methods show NAME --json` must list, written out from the method modules once: a renamed option, a
# changed default or a type the table prints wrongly fails here (the code's own model_fields cannot tell).
EXPECTED_OPTIONS = {
    "lora": LORA_OPTIONS,
    "dora": LORA_OPTIONS,
    "qlora": [
        *LORA_OPTIONS,
        ("quant_type", "nf4 | fp4", "nf4"),
        ("double_quant", "bool", True),
        ("compute_dtype", "auto | float32 | bfloat16 | float16", "auto"),
    ],
    "prefix": [
        ("num_virtual_tokens", "int", 20),
        ("prefix_projection", "bool", False),
        ("encoder_hidden_size", "int | null", None),
        ("init", "auto | text | random", "auto"),
        ("init_text", "str | null", None),
    ],
    "prompt": [("num_virtual_tokens", "int", 20), ("init_text", "str | null", None)],
    "ia3": [("target_modules", "list[str] | null", None), ("feedforward_modules", "list[str] | null", None)],
    "full": [],
    "freeze": [("layers", "int", 2), ("modules", "list[str]", [])],
}
EXPECTED_LEARNING_RATES = {
    "lora": 2e-4,
    "dora": 2e-4,
    "qlora": 2e-4,
    "prefix": 1e-2,
    "prompt": 3e-2,
    "ia3": 3e-3,
    "full": 2e-5,
    "freeze": 5e-5,
}


@pytest.mark.parametrize("name", ALL_METHODS)
def test_methods_show_json_gives_every_option_with_type_default_and_help(name):
    result = runner.invoke(app, ["methods", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == name
    assert shown["default_learning_rate"] == pytest.approx(EXPECTED_LEARNING_RATES[name])
    assert [(o["name"], o["type"], o["default"]) for o in shown["options"]] == EXPECTED_OPTIONS[name]
    for option in shown["options"]:
        assert option["required"] is False, option["name"]
        assert option["help"].strip().endswith("."), option  # a sentence, not an empty or cut-off string


def test_methods_show_states_the_auto_rules_that_apply():
    lora = json.loads(runner.invoke(app, ["methods", "show", "lora", "--json"]).stdout)["auto_rules"]
    rules = {item["key"]: item["rule"] for item in lora}
    assert rules["method.r"].startswith("LoRA-family rank by training rows: 8 under 1,000, 16 under 10,000")
    assert "1e-3 under 1B parameters" in rules["training.learning_rate"]
    assert "100–25,000 examples seen" in rules["training.epochs"]
    full = json.loads(runner.invoke(app, ["methods", "show", "full", "--json"]).stdout)["auto_rules"]
    assert "method.r" not in {item["key"] for item in full}
    shown = runner.invoke(app, ["methods", "show", "ia3"])
    assert "Auto rules" in shown.output and "3e-3 at every size" in shown.output


def test_methods_show_prints_types_defaults_and_help():
    result = runner.invoke(app, ["methods", "show", "qlora"])
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


def test_missing_requirement_is_listed_with_the_install_command(monkeypatch):
    monkeypatch.setitem(catalog.BUILTIN_METHODS, "needs-missing", f"{__name__}:_NeedsMissing")
    result = runner.invoke(app, ["methods", "--json"])
    item = {i["name"]: i for i in json.loads(result.stdout)}["needs-missing"]
    assert item["ready"] is False
    assert item["install"] == "pip install ftkit-test-extra"
    assert item["requirements"] == [{"module": "ftkit_test_module_that_does_not_exist", "installed": False}]


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
