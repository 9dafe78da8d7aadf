"""Method options are validated by each method's own schema: a key that does not belong to the chosen method is
exit 2, naming the key, where it is, and the method's valid options; incompatible combinations say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.methods.catalog import BUILTIN_METHODS, get_method
from tests.methods.conftest import ALL_METHODS

runner = CliRunner()

# A key from another method, per method: (method, foreign key, value)
FOREIGN_KEYS = [
    ("lora", "num_virtual_tokens", 8),
    ("dora", "layers", 2),
    ("qlora", "init_text", "hello"),
    ("prefix", "r", 8),
    ("prompt", "alpha", 16),
    ("ia3", "r", 8),
    ("full", "r", 8),
    ("freeze", "num_virtual_tokens", 8),
]


def recipe_with_method(tmp_path: Path, block: str) -> Path:
    (tmp_path / "train.jsonl").write_text('{"text": "hello"}\n')
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"model: {tmp_path}/model.gguf\ndata:\n  train: train.jsonl\nmethod:\n{block}training:\n  max_steps: 2\n"
    )
    return path


def validate(path: Path, *extra: str):
    return runner.invoke(app, ["validate", str(path), *extra])


def test_eight_builtin_methods_are_registered():
    assert set(BUILTIN_METHODS) == set(ALL_METHODS)
    for name in ALL_METHODS:
        method = get_method(name)
        assert method.name == name
        assert method.description and method.typical_trainable
        for field_name, field in method.options_model.model_fields.items():
            assert field.description, f"{name}.{field_name} has no help text"


def test_foreign_keys_cover_every_method():
    assert sorted(method for method, _, _ in FOREIGN_KEYS) == sorted(ALL_METHODS)


@pytest.mark.parametrize(("method", "key", "value"), FOREIGN_KEYS)
def test_option_of_another_method_is_exit_2_with_key_line_and_valid_options(tmp_path, method, key, value):
    path = recipe_with_method(tmp_path, f"  name: {method}\n  {key}: {value}\n")
    result = validate(path, "--set", "model=HuggingFaceTB/SmolLM2-135M-Instruct")
    assert result.exit_code == 2, result.output
    assert f"recipe.yaml:6: method.{key}: unknown key" in result.output
    valid = list(get_method(method).options_model.model_fields)
    if valid:
        assert f"(valid here: name ({method}), {', '.join(valid)})" in " ".join(result.output.split())
    else:  # full has no options of its own
        assert "(valid here: name)" in result.output


def test_valid_options_pass_and_appear_resolved(tmp_path):
    import json

    path = recipe_with_method(tmp_path, "  name: prefix\n  num_virtual_tokens: 12\n")
    result = runner.invoke(
        app, ["validate", str(path), "--json", "--set", "model=HuggingFaceTB/SmolLM2-135M-Instruct"]
    )
    assert result.exit_code == 0, result.output
    method = json.loads(result.stdout)["resolved"]["method"]
    assert method == {
        "name": "prefix",
        "num_virtual_tokens": 12,
        "prefix_projection": False,
        "encoder_hidden_size": None,
        "init": "auto",
        "init_text": None,
    }


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("  name: full\n  load_in_4bit: true\n", "use method `qlora`"),
        ("  name: freeze\n  quantize: 4bit\n", "use method `qlora`"),
        ("  name: qlora\n  full: true\n", "use method `full`"),
        ("  name: qlora\n  train_base: true\n", "qlora keeps the base frozen in 4-bit"),
        ("  name: freeze\n  layers: 0\n", "nothing would train"),
        (
            "  name: ia3\n  target_modules: [k_proj]\n  feedforward_modules: [down_proj]\n",
            "subset of target_modules",
        ),
        ("  name: prefix\n  num_virtual_tokens: 0\n", "method.num_virtual_tokens"),
        ("  name: qlora\n  quant_type: int4\n", "method.quant_type"),
        ("  name: lorra\n", "did you mean `lora`"),
        (
            "  name: lora\n  target_modules: [q_proj, lm_head]\n",
            "recipe.yaml:6: method.target_modules: must be without lm_head",
        ),
        ("  name: dora\n  target_modules: [lm_head]\n", "an adapter there would never train"),
    ],
)
def test_incompatible_or_invalid_method_settings_are_explained(tmp_path, block, expected):
    path = recipe_with_method(tmp_path, block)
    result = validate(path, "--set", "model=HuggingFaceTB/SmolLM2-135M-Instruct")
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())


def test_set_override_of_a_foreign_key_names_the_override(tmp_path):
    path = recipe_with_method(tmp_path, "  name: prompt\n")
    result = validate(path, "--set", "model=HuggingFaceTB/SmolLM2-135M-Instruct", "--set", "method.r=4")
    assert result.exit_code == 2
    assert "--set method.r: method.r: unknown key" in result.output
