"""The one "did you mean" rule: difflib's ratio (2 * matching characters / total characters) at CUTOFF."""

from __future__ import annotations

from ftkit.suggest import CUTOFF, did_you_mean


def test_typos_get_the_closest_choice():
    assert did_you_mean("lorra", ["full", "lora", "qlora", "dora"]) == ["lora"]
    assert did_you_mean("learnig_rate", ["seed", "learning_rate", "max_steps"]) == ["learning_rate"]


def test_the_cutoff_is_inclusive_and_nothing_below_it_is_suggested():
    assert CUTOFF == 0.6
    # "abc" in "abcdefg": 2 * 3 / 10 = 0.6 exactly; in "abcdefghi": 2 * 3 / 12 = 0.5.
    assert did_you_mean("abc", ["abcdefg"]) == ["abcdefg"]
    assert did_you_mean("abc", ["abcdefghi"]) == []
    assert did_you_mean("seed", ["steps"]) == []  # 2 * 2 / 9 = 0.44


def test_several_suggestions_best_first_without_repeats():
    choices = ["model.layers.0.mlp", "lm_head", "lm_head", "lm_heads", "score"]
    assert did_you_mean("lm_hed", choices, n=3) == ["lm_head", "lm_heads"]
    assert did_you_mean("lm_hed", iter(choices)) == ["lm_head"]  # any iterable, e.g. a dict's keys
