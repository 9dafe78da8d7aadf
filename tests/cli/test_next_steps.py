"""What `ftkit run` suggests next: commands that exist, name this run, and carry the registry it was given."""

from __future__ import annotations

import ast
import shlex

import pytest

from ftkit.cli.run import next_steps

ME, PREVIOUS, LATER = "20250102-093000-cccccc", "20250101-120000-aaaaaa", "20250103-080000-dddddd"
OUTPUT = "/data/runs/it's here/20250102-093000-cccccc"  # a quote and a space: the commands must still parse


def python_literals(command: str) -> list[str]:
    """The string constants of the Python code in `python -c CODE`, after the shell's own unquoting."""
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"] and len(argv) == 3
    return [node.value for node in ast.walk(ast.parse(argv[2])) if isinstance(node, ast.Constant)]


@pytest.fixture(autouse=True)
def no_registry_env(monkeypatch):
    monkeypatch.delenv("FTKIT_REGISTRY", raising=False)


def test_first_run_model_try_and_tag_but_nothing_to_compare():
    steps = dict(next_steps(ME, OUTPUT, "causal-lm", [{"id": ME, "name": "calm-heron"}], None))
    assert list(steps) == ["model", "try it", "tag it"]
    assert steps["model"] == OUTPUT
    assert steps["try it"] == "ftkit chat 2025010"  # an interactive session with this run's model
    assert steps["tag it"] == "ftkit tag 2025010 NAME"  # the shortest unique prefix, at least 7 characters


def test_compare_with_the_run_before():
    runs = [{"id": ME}, {"id": PREVIOUS}]
    steps = dict(next_steps(ME, OUTPUT, "causal-lm", runs, None))
    assert steps["compare"] == "ftkit diff @latest~1 @latest"
    assert steps["tag it"] == "ftkit tag 20250102 NAME"


def test_a_later_run_moved_latest_so_ids_are_named():
    runs = [{"id": LATER}, {"id": ME}, {"id": PREVIOUS}]
    steps = dict(next_steps(ME, OUTPUT, "causal-lm", runs, None))
    assert steps["compare"] == "ftkit diff 20250101 20250102"


def test_registry_option_is_carried(tmp_path, monkeypatch):
    registry = tmp_path / "my registry"
    runs = [{"id": ME}, {"id": PREVIOUS}]
    steps = dict(next_steps(ME, OUTPUT, "causal-lm", runs, registry))
    for what in ("try it", "compare", "tag it"):
        argv = shlex.split(steps[what])
        assert argv[-2:] == ["--registry", str(registry)], steps[what]
    monkeypatch.setenv(
        "FTKIT_REGISTRY", str(registry)
    )  # from the environment: the commands find it there too
    assert "--registry" not in dict(next_steps(ME, OUTPUT, "causal-lm", runs, registry))["compare"]


def test_classification_tries_a_prediction():
    steps = dict(next_steps(ME, OUTPUT, "classification", [{"id": ME}], None))
    code = shlex.split(steps["try it"])[2]
    assert OUTPUT in python_literals(steps["try it"])
    assert "t.labels[" in code and "logits.argmax" in code


def test_no_output_folder_no_model_step():
    steps = dict(next_steps(ME, None, "causal-lm", [{"id": ME}], None))
    assert list(steps) == ["tag it"]


def test_extra_steps_name_this_run_and_carry_the_registry(tmp_path):
    """`ftkit tune` adds a checkout of the generated recipe: `{run}` becomes this run's short id."""
    registry = tmp_path / "reg"
    extra = [("recipe", "ftkit checkout {run} -o recipe.yaml")]
    steps = next_steps(ME, OUTPUT, "causal-lm", [{"id": ME}, {"id": PREVIOUS}], registry, extra)
    assert [what for what, _ in steps] == ["model", "try it", "compare", "tag it", "recipe"]
    assert shlex.split(dict(steps)["recipe"]) == [
        "ftkit", "checkout", "20250102", "-o", "recipe.yaml", "--registry", str(registry),
    ]  # fmt: skip
