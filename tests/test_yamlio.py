"""resolved.yaml through PyYAML: every value reads back exactly (PyYAML's loaders and the recipe loader), and
files written by the former home-made writer still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ftkit import yamlio
from ftkit.recipe.load import RecipeLoader

FIXTURES = Path(__file__).parent / "fixtures"

TRICKY = [
    "yes", "no", "on", "off", "Y", "null", "~", "true", "1e5", "1e-3", "-2E+4", "0x10", "0o17", "1_000", ".5",
    "inf", "nan", ".inf", "2025-01-01", "2025-01-01 10:00:00", "1:20", "a: b", "#x", "", " lead", "trail ",
    "=", "<<", "*alias", "&anchor", "!tag", "%", "@", "`", "- item", "? key", "[x]", "{x}", "'single'", '"double"',
]  # fmt: skip
SAMPLE = {
    "name": None,
    "model": "Qwen/Qwen2.5-0.5B",
    "learning_rate": 1e-05,
    "lr_small": 1e-3,
    "big": 1e20,
    "neg": -3,
    "huge_int": 10**30,
    "negative_zero": -0.0,
    "flags": [True, False, None],
    "tricky": TRICKY,
    "text": 'line one\nline two\t"quoted" é',
    "trailing_newline": "A\n",
    "trailing_newlines": "A\n\n\n",
    "leading_space_block": "  indented\nsecond",
    "trailing_space_line": "a  \nb",
    "system_prompt": "You are a helpful assistant.\nAnswer briefly.\n",
    "unicode_breaks": "a\u2028b\x85c\x7f",
    "nested": {"empty_list": [], "empty_dict": {}, "list_of_dicts": [{"a": 1}, {"b": [1, 2, {"c": "d"}]}]},
    "odd key: here": 1,
    "true": "key that is a keyword",
    "1": "numeric key",
    "long": "word " * 100,
}


def _loaders(text: str) -> list:
    """What each reader makes of `text`: yamlio (C loader when present), PyYAML's pure-Python safe loader, and
    the recipe loader (what `ftkit rerun` reads the dump back with)."""
    return [yamlio.load(text), yaml.load(text, Loader=yaml.SafeLoader), yaml.load(text, Loader=RecipeLoader)]


def test_every_value_reads_back_exactly_with_every_loader():
    text = yamlio.dump(SAMPLE, header="a header\nsecond line")
    assert text.startswith("# a header\n# second line\n")
    for loaded in _loaders(text):
        assert loaded == SAMPLE
        assert loaded["tricky"] == TRICKY and all(type(item) is str for item in loaded["tricky"])


def test_layout_is_readable():
    text = yamlio.dump(
        {"lr": 1e-05, "x": 1e20, "s": "1e-3", "prompt": "one\ntwo\n", "model": "gpt2", "k": {}}
    )
    assert (
        "lr: 1.0e-05\n" in text and "x: 1.0e+20\n" in text
    )  # YAML 1.1 floats need a dot and a signed exponent
    assert 's: "1e-3"\n' in text  # a string the recipe loader would otherwise read as a float
    assert "prompt: |\n  one\n  two\n" in text  # multi-line strings as literal blocks
    assert "model: gpt2\n" in text and "k: {}\n" in text
    assert list(yamlio.load(text)) == ["lr", "x", "s", "prompt", "model", "k"]  # key order kept


def test_non_finite_floats():
    for loaded in _loaders(yamlio.dump({"a": math.inf, "b": -math.inf, "c": math.nan})):
        assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])


def test_non_plain_types_are_normalized():
    class Score(float):
        pass

    class Count(int):
        pass

    data = {
        "path": Path("/tmp/x"),
        "tuple": (1, 2),
        "set": {"b", "a"},
        "score": Score(0.5),
        "n": Count(3),
        7: "k",
    }
    loaded = yamlio.load(yamlio.dump(data))
    assert loaded == {"path": "/tmp/x", "tuple": [1, 2], "set": ["a", "b"], "score": 0.5, "n": 3, "7": "k"}


def test_empty_and_bad_input():
    assert yamlio.dump({}) == "{}\n"
    assert (
        yamlio.load(yamlio.dump({})) == {}
        and yamlio.load("") == {}
        and yamlio.load("# only a comment\n") == {}
    )
    with pytest.raises(ValueError):
        yamlio.load("a: 1\n    b: 2\n")
    with pytest.raises(ValueError, match="not a mapping"):
        yamlio.load("- 1\n- 2\n")


def test_files_written_by_the_former_yamlish_writer_still_read():
    text = (FIXTURES / "resolved_yamlish.yaml").read_text(encoding="utf-8")
    expected = json.loads((FIXTURES / "resolved_yamlish.json").read_text(encoding="utf-8"))
    for loaded in _loaders(text):
        training = loaded["training"]
        assert training.pop("inf") == math.inf and training.pop("minus_inf") == -math.inf
        assert math.isnan(training.pop("nan"))
        assert loaded == expected


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(TRICKY),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=5))
def test_property_round_trip(data):
    for loaded in _loaders(yamlio.dump(data)):
        assert loaded == data
