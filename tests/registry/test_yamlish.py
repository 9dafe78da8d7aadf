"""The YAML subset written for resolved.yaml: it round-trips, and PyYAML reads it the same way."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ftkit.registry import yamlish

SAMPLE = {
    "name": None,
    "model": "Qwen/Qwen2.5-0.5B",
    "task": "causal-lm",
    "learning_rate": 1e-05,
    "big": 1e20,
    "neg": -3,
    "flags": [True, False, None],
    "tricky": [
        "yes",
        "no",
        "on",
        "off",
        "null",
        "~",
        "1e5",
        "2025-01-01",
        "1:20",
        "0x10",
        ".inf",
        "a: b",
        "#x",
        "",
    ],
    "text": 'line one\nline two\t"quoted" é',
    "trailing_newline": "A\n",
    "unicode_breaks": "a\u2028b\x85c\x7f",
    "nested": {"empty_list": [], "empty_dict": {}, "list_of_dicts": [{"a": 1}, {"b": [1, 2, {"c": "d"}]}]},
    "odd key: here": 1,
    "true": "key that is a keyword",
    "path": Path("/tmp/x"),
    "tuple": (1, 2),
}


def test_round_trip_and_pyyaml_agree():
    text = yamlish.dump(SAMPLE, header="a header")
    expected = yamlish.normalize(SAMPLE)
    assert yamlish.load(text) == expected
    assert yaml.safe_load(text) == expected
    assert text.startswith("# a header\n")


def test_floats_keep_a_dot_for_yaml_1_1():
    text = yamlish.dump({"lr": 1e-05, "x": 1e20})
    assert "lr: 1.0e-05" in text and "x: 1.0e+20" in text


def test_non_finite():
    loaded = yamlish.load(yamlish.dump({"a": math.inf, "b": -math.inf, "c": math.nan}))
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])
    parsed = yaml.safe_load(yamlish.dump({"a": math.inf}))
    assert parsed["a"] == math.inf


def test_empty():
    assert yamlish.load(yamlish.dump({})) == {}
    assert yaml.safe_load(yamlish.dump({})) == {}


def test_rejects_garbage():
    with pytest.raises(ValueError):
        yamlish.load("a: 1\n    b: 2\n")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=5))
def test_property_round_trip(data):
    text = yamlish.dump(data)
    assert yamlish.load(text) == data
    assert yaml.safe_load(text) == data
