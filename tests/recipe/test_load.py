"""Recipe loading: the issue's minimal recipe, located errors for every kind of mistake, and --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import RecipeError
from ftkit.recipe.load import load_recipe, parse_value

MINIMAL = """\
name: smollm2-lora-demo            # optional
model: HuggingFaceTB/SmolLM2-135M-Instruct   # hub id, local folder, or a .gguf file
task: causal-lm                    # causal-lm (default) | classification
data:
  train: data/train.jsonl
  eval: data/eval.jsonl            # or eval_split: 0.1
  format: auto                     # auto | text | completion | instruction | chat | classification
method:
  name: lora                       # this issue: lora and full; the methods issue adds the rest
  r: 16
  alpha: 32
  target_modules: all-linear
training:
  epochs: 1
  max_steps: 20                    # optional cap
  learning_rate: 2.0e-4
  batch_size: 8
  grad_accum: 1
  max_seq_len: 512
  seed: 42
output: outputs/                   # where weights go
"""

runner = CliRunner()


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "data" / "eval.jsonl").write_text('{"text": "hello"}\n')
    return tmp_path


def write(project: Path, text: str) -> Path:
    path = project / "recipe.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides)
    return caught.value.problems


def test_minimal_recipe_from_the_issue_validates_as_written(project):
    loaded = load_recipe(write(project, MINIMAL))
    assert loaded.recipe.name == "smollm2-lora-demo"
    assert loaded.recipe.training.learning_rate == pytest.approx(2e-4)
    assert loaded.method_options.r == 16 and loaded.method_options.alpha == 32
    assert loaded.resolve_path(loaded.recipe.data.train) == (project / "data" / "train.jsonl").resolve()


def test_misspelled_key_names_file_line_key_and_suggestion(project):
    path = write(project, MINIMAL.replace("  learning_rate: 2.0e-4", "  learnig_rate: 2.0e-4"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert f"{path}:16: training.learnig_rate: unknown key; did you mean `learning_rate`?" in problems[0]


def test_all_problems_are_reported_at_once(project):
    text = (
        MINIMAL.replace("  epochs: 1", "  epochs: many")
        .replace("  batch_size: 8", "  batch_size: 0")
        .replace("task: causal-lm ", "task: regression ")
        .replace("  r: 16", "  r: sixteen")
    )
    problems = problems_of(write(project, text))
    joined = "\n".join(problems)
    assert len(problems) == 4, joined
    assert ":3: task:" in joined
    assert ":10: method.r:" in joined
    assert ":14: training.epochs:" in joined
    assert ":17: training.batch_size:" in joined and "greater than or equal to 1" in joined


def test_unknown_method_option_lists_valid_options(project):
    problems = problems_of(write(project, MINIMAL.replace("  r: 16", "  rank: 16")))
    assert ":10: method.rank: unknown key; did you mean `r`?" in problems[0]
    assert "target_modules" in problems[0]


def test_unknown_method_is_located(project):
    problems = problems_of(write(project, MINIMAL.replace("name: lora ", "name: lorra ")))
    assert ":9: method.name: unknown method `lorra`; did you mean `lora`?" in problems[0]


def test_missing_data_file_and_bad_model_path(project):
    text = MINIMAL.replace("data/eval.jsonl", "data/missing.jsonl").replace(
        "HuggingFaceTB/SmolLM2-135M-Instruct", "./no-such-model"
    )
    joined = "\n".join(problems_of(write(project, text)))
    assert ":6: data.eval: file not found:" in joined
    assert ":2: model: model folder not found:" in joined


def test_missing_gguf_and_malformed_model_id(project):
    assert (
        "GGUF file not found"
        in problems_of(
            write(project, MINIMAL.replace("HuggingFaceTB/SmolLM2-135M-Instruct", "weights/model.gguf"))
        )[0]
    )
    assert (
        "not a hub id"
        in problems_of(
            write(project, MINIMAL.replace("HuggingFaceTB/SmolLM2-135M-Instruct", "'bad model id!'"))
        )[0]
    )


def test_eval_and_eval_split_are_exclusive(project):
    text = MINIMAL.replace(
        "  eval: data/eval.jsonl            # or eval_split: 0.1",
        "  eval: data/eval.jsonl\n  eval_split: 0.1",
    )
    assert "give either `eval` or `eval_split`" in problems_of(write(project, text))[0]


def test_set_overrides_and_validates_the_same_way(project):
    path = write(project, MINIMAL)
    loaded = load_recipe(
        path, ["training.learning_rate=1e-4", "method.r=8", "data.eval_split=0.2", "data.eval=null"]
    )
    assert loaded.recipe.training.learning_rate == pytest.approx(1e-4)
    assert loaded.method_options.r == 8
    problems = problems_of(path, ["training.learning_rate=fast", "training.max_step=3"])
    assert any(p.startswith("--set training.learning_rate: training.learning_rate:") for p in problems), (
        problems
    )
    assert any("--set training.max_step" in p and "did you mean `max_steps`" in p for p in problems), problems


def test_set_without_equals_is_a_recipe_error(project):
    with pytest.raises(RecipeError, match="is not KEY=VALUE"):
        load_recipe(write(project, MINIMAL), ["training.learning_rate"])


def test_invalid_yaml_is_located(project):
    with pytest.raises(RecipeError, match=r"recipe.yaml:\d+: the recipe is not valid YAML"):
        load_recipe(write(project, "model: x\ndata:\n  train: [unclosed\n"))


def test_scientific_notation_without_a_dot_is_a_float():
    assert parse_value("1e-4") == pytest.approx(1e-4)
    assert parse_value("true") is True
    assert parse_value("[q_proj, v_proj]") == ["q_proj", "v_proj"]


def test_validate_command_exit_codes_and_messages(project):
    good = write(project, MINIMAL)
    result = runner.invoke(app, ["validate", str(good), "--json"])
    assert result.exit_code == 0, result.output
    bad = project / "bad.yaml"
    bad.write_text(MINIMAL.replace("  seed: 42", "  sead: 42"))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:20: training.sead: unknown key; did you mean `seed`?" in result.output
    assert "Traceback" not in result.output


def test_missing_recipe_file_is_exit_2():
    result = runner.invoke(app, ["validate", "nope.yaml"])
    assert result.exit_code == 2
    assert "recipe file not found: nope.yaml" in result.output
