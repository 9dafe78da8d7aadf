"""Editing recipe text in place: overrides written where the key stands, everything else byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftkit.errors import RecipeError
from ftkit.recipe.edit import apply_overrides, rebase_paths

RECIPE = """\
# my recipe
model: ./models/tiny   # local
data:
    train: data/train.jsonl   # 4-space indent here
method: {name: lora, r: 8}

training:
  learning_rate: 1.0e-3   # keep this comment
  target: [a, b]
  modules:
    - q_proj
    - v_proj
  # a comment after the section
evaluation:
output: outputs/

# the end
"""


def test_overrides_keep_comments_and_layout():
    overrides = [
        "training.learning_rate=5e-4",  # in place, comment kept
        "training.epochs=2",  # absent: added at the end of its section, before the trailing comment
        "training.modules=[k_proj]",  # a block list becomes the typed inline list
        "method.r=4",  # inside a flow mapping
        "method.alpha=16",  # absent from a flow mapping
        "data.eval=data/eval.jsonl",  # absent, in a section indented by 4
        "evaluation.max_rows=4",  # an empty section gets its first key
        "lora.extra.deep=x y",  # absent section, nested, created at the end of the root
        "output=runs/",
    ]
    assert (
        apply_overrides(RECIPE, overrides)
        == """\
# my recipe
model: ./models/tiny   # local
data:
    train: data/train.jsonl   # 4-space indent here
    eval: data/eval.jsonl
method: {name: lora, r: 4, alpha: 16}

training:
  learning_rate: 5e-4   # keep this comment
  target: [a, b]
  modules: [k_proj]
  epochs: 2
  # a comment after the section
evaluation:
  max_rows: 4
output: runs/
lora:
  extra:
    deep: x y

# the end
"""
    )


def test_a_value_that_would_read_differently_inline_is_written_as_yaml():
    text = "name: a\n"
    written = apply_overrides(text, ["name=x: y", "note=1 # not a comment?"])
    # `--set name=x: y` parses as the mapping {x: y}; `note` as 1 (YAML drops the comment), as `ftkit run` reads them
    assert written == 'name: {"x": "y"}\nnote: 1 # not a comment?\n'


def test_a_redacted_secret_and_an_empty_value_are_written_as_valid_yaml():
    written = apply_overrides("hub:\n  token: x\n", ["hub.token=***redacted***", "data.eval="])
    assert written == "hub:\n  token: '***redacted***'\ndata:\n  eval: null\n"


def test_an_empty_recipe_and_a_value_replacing_a_section():
    assert apply_overrides("", ["training.seed=3"]) == "training:\n  seed: 3\n"
    assert apply_overrides("a:\n  b: 1\n  c: 2\nz: 0\n", ["a=5"]) == "a: 5\nz: 0\n"


def test_a_key_under_a_value_is_refused_as_run_refuses_it():
    with pytest.raises(RecipeError, match="not a section"):
        apply_overrides("method: lora\n", ["method.r=4"])


def test_relative_paths_are_rebased_and_unrelated_ones_made_absolute(tmp_path):
    original = tmp_path / "project"
    resolved = {
        "model": str(original / "models" / "tiny"),
        "data": {"train": str(original / "data" / "train.jsonl"), "eval": "owner/hub-dataset"},
        "output": str(original / "outputs"),
    }
    text = (
        "model: ./models/tiny   # local\ndata:\n  train: data/train.jsonl\n  eval: owner/hub-dataset\n"
        "output: outputs/\n"
    )
    same, notes = rebase_paths(text, resolved, original)
    assert (same, notes) == (text, [])  # the recipe's own folder: nothing changes, not even `./` or a slash

    moved, notes = rebase_paths(text, resolved, tmp_path / "elsewhere" / "deeper")
    assert moved == (
        "model: ../../project/models/tiny   # local\ndata:\n  train: ../../project/data/train.jsonl\n"
        "  eval: owner/hub-dataset\noutput: ../../project/outputs\n"
    )
    assert [note.split(":")[0] for note in notes] == ["data.train", "model", "output"]

    far, notes = rebase_paths(text, resolved, Path("/"))  # nothing in common but the root: absolute, said so
    assert f"train: {original / 'data' / 'train.jsonl'}\n" in far
    assert all("absolute" in note for note in notes) and len(notes) == 3
