"""Generation metrics on hand-written answers: every expected value below is worked out by hand in the comment beside
it, including the extraction failures (no match, two matches, malformed JSON, JSON that is not an object, numbers
with commas and signs)."""

from __future__ import annotations

import re

import pytest

from ftkit.evaluation.scoring import METRICS, default_metrics, resolve_metrics, score_generations
from ftkit.evaluation.scoring_text import (
    exact_match_strict,
    extract_answer,
    json_equal,
    last_number,
    normalize_answer,
    parse_json_object,
)


def _scores(name: str, pairs: list[tuple[str, str]], **options) -> list[float | None]:
    _, per_row = score_generations([name], [p for p, _ in pairs], [r for _, r in pairs], **options)
    return [row["scores"][name] for row in per_row]


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("Paris", "paris", 1.0),  # case folded
        ("  Paris.\n", "Paris", 1.0),  # ends trimmed, trailing period dropped
        ("Paris !?", "Paris", 1.0),  # trailing ! ? and the space before them dropped
        ("New   York", "new york", 1.0),  # whitespace run collapsed
        ("ＰＡＲＩＳ", "paris", 1.0),  # NFKC: full-width letters are plain letters
        ("STRASSE", "straße", 1.0),  # casefold: ß is ss
        ("Paris, France", "Paris France", 0.0),  # punctuation inside the answer counts
        ('"Paris"', "Paris", 0.0),  # quotes are kept
        ("...Paris", "Paris", 0.0),  # leading punctuation is kept
        ("Paris is nice", "Paris", 0.0),  # a longer answer is not a match
    ],
)
def test_exact_match_normalises_case_whitespace_and_trailing_punctuation(prediction, reference, expected):
    assert _scores("exact_match", [(prediction, reference)]) == [expected]
    assert _scores("exact_match", [(reference, prediction)]) == [expected]  # symmetric


def test_exact_match_strict_is_the_old_whitespace_only_rule():
    pairs = [("red  fox\n", "red fox"), ("Red", "red"), ("red.", "red"), ("red\tfox", "red fox")]
    assert _scores("exact_match_strict", pairs) == [1.0, 0.0, 0.0, 1.0]
    assert [exact_match_strict(p, r) for p, r in pairs] == [True, False, False, True]
    assert _scores("exact_match", pairs) == [1.0, 1.0, 1.0, 1.0]


def test_normalize_answer_spelled_out():
    assert normalize_answer(" The\u00a0Answer:  42 ;,. ") == "the answer: 42"  # inner ':' stays, trailing go
    assert normalize_answer("?!") == ""


GSM = "#### (.+)"


def test_answer_match_takes_group_one_of_the_last_match():
    pairs = [
        ("so 3 + 4 = 7\n#### 7", "steps...\n#### 7"),  # 7 vs 7 -> 1
        ("#### 5\nwait, no\n#### 7", "#### 7"),  # two matches: the last (7) counts -> 1
        ("#### 7\nwait, no\n#### 5", "#### 7"),  # last is 5 -> 0
        ("the answer is 7", "#### 7"),  # no match in the prediction -> 0
        ("#### Seven.", "#### seven"),  # normalised: case and trailing period -> 1
        ("#### 7", "7"),  # no match in the reference: the whole reference (7) -> 1
    ]
    aggregate, per_row = score_generations(
        ["answer_match"], [p for p, _ in pairs], [r for _, r in pairs], answer_regex=GSM
    )
    assert [row["scores"]["answer_match"] for row in per_row] == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert aggregate == {"answer_match": pytest.approx(4 / 6)}
    assert per_row[1]["extracted"]["answer_match"] == {"prediction": "7", "reference": "7"}
    assert per_row[2]["extracted"]["answer_match"] == {"prediction": "5", "reference": "7"}
    assert per_row[3]["extracted"]["answer_match"]["prediction"] is None
    assert "no match" in per_row[3]["failures"]["answer_match"]
    assert per_row[5]["extracted"]["answer_match"]["reference"] == "7"


def test_answer_regex_without_a_group_uses_the_whole_match():
    pattern = re.compile(r"\b[A-D]\b")
    assert extract_answer("A or maybe C", pattern) == "C"
    assert _scores("answer_match", [("I pick B", "B"), ("B then D", "B")], answer_regex=r"\b[A-D]\b") == [
        1.0,
        0.0,
    ]
    assert (
        extract_answer("answer: x", re.compile(r"answer: (\d+)?x")) == ""
    )  # an unmatched optional group is ""


@pytest.mark.parametrize(
    ("text", "matched", "value"),
    [
        ("total: 1,234 apples", "1,234", 1234),
        ("it fell to -5 degrees", "-5", -5),
        ("pages 3-5", "5", 5),  # a dash between numbers is not a sign
        ("cost $1,234.50.", "1,234.50", 1234.5),
        ("half is 1/2", "1/2", 0.5),
        ("x = \u22127.25", "\u22127.25", -7.25),  # U+2212 minus
        ("2.5e3 m", "2.5e3", 2500),
        ("1,2,3", "3", 3),  # a comma list: three numbers
        ("12,3456", "3456", 3456),  # not thousands groups: 12 then 3456
        ("first 10 then 20%", "20", 20),
        ("v1.2.3 release", None, None),  # inside a word: no number
        ("no digits here", None, None),
    ],
)
def test_last_number(text, matched, value):
    found = last_number(text)
    if matched is None:
        assert found is None
    else:
        assert found[0] == matched
        assert float(found[1]) == pytest.approx(value)


def test_numeric_match_compares_the_last_numbers_within_the_tolerance():
    pairs = [
        ("so the total is 1,234", "#### 1234"),  # 1234 == 1234 -> 1
        ("answer: -5", "#### -5"),  # -> 1
        ("answer: 5", "#### -5"),  # sign differs -> 0
        ("0.5", "1/2"),  # -> 1
        ("3.0000001", "3"),  # differs by 1e-7 <= 1e-6 -> 1
        ("3.001", "3"),  # 1e-3 > 1e-6 -> 0
        ("no idea", "#### 4"),  # no number in the answer -> 0
        ("4", "#### four"),  # no number in the reference -> 0
    ]
    aggregate, per_row = score_generations(["numeric_match"], [p for p, _ in pairs], [r for _, r in pairs])
    assert [row["scores"]["numeric_match"] for row in per_row] == [1, 1, 0, 1, 1, 0, 0, 0]
    assert aggregate["numeric_match"] == pytest.approx(4 / 8)
    assert per_row[0]["extracted"]["numeric_match"] == {"prediction": "1,234", "reference": "1234"}
    assert per_row[6]["failures"]["numeric_match"] == "no number in the answer"
    assert per_row[7]["failures"]["numeric_match"] == "no number in the reference"
    # a looser absolute tolerance: 3.001 is within 0.01 of 3
    assert _scores("numeric_match", [("3.001", "3")], numeric_tolerance=0.01) == [1.0]


@pytest.mark.parametrize(
    ("text", "valid", "why"),
    [
        ('{"a": 1}', True, None),
        ('  {"a": 1}\n', True, None),  # surrounding whitespace is trimmed
        ('```json\n{"a": 1}\n```', True, None),  # one code fence around the whole answer
        ('```\n{"a": 1}\n```', True, None),
        ('Here: {"a": 1}', False, "not JSON"),  # text before the object
        ('{"a": 1} done', False, "not JSON"),  # text after it
        ('{"a": 1', False, "not JSON"),  # malformed (cut off)
        ("[1, 2]", False, "JSON an array, not an object"),
        ('"a"', False, "JSON a string, not an object"),
        ("42", False, "JSON a number, not an object"),
        ('{"a": NaN}', False, "NaN is not JSON"),
        ("", False, "not JSON"),
    ],
)
def test_json_valid(text, valid, why):
    obj, reason = parse_json_object(text)
    assert (obj is not None) is valid
    assert (reason is None) if valid else why in reason
    assert _scores("json_valid", [(text, "{}")]) == [1.0 if valid else 0.0]


def test_json_fields_per_row_and_per_field():
    reference = '{"name": "Ana", "age": 30, "city": "Lima"}'
    predictions = [
        '{"name": "Ana", "age": 30, "city": "Lima"}',  # 3/3
        '{"name": "ana", "age": 30.0, "city": "Lima", "extra": 1}',  # name case differs: 2/3 (30 == 30.0)
        '{"name": "Ana", "age": "30"}',  # age is a string, city missing: 1/3
        '{"name": "Ana", "age": 30',  # malformed: 0/3
        '["Ana", 30, "Lima"]',  # not an object: 0/3
    ]
    aggregate, per_row = score_generations(["json_fields", "json_valid"], predictions, [reference] * 5)
    fractions = [row["scores"]["json_fields"] for row in per_row]
    assert fractions == pytest.approx([1, 2 / 3, 1 / 3, 0, 0])
    assert aggregate["json_fields"] == pytest.approx((1 + 2 / 3 + 1 / 3) / 5)
    assert aggregate["json_field.name"] == pytest.approx(2 / 5)  # rows 0, 2
    assert aggregate["json_field.age"] == pytest.approx(2 / 5)  # rows 0, 1
    assert aggregate["json_field.city"] == pytest.approx(2 / 5)  # rows 0, 1
    assert aggregate["json_valid"] == pytest.approx(3 / 5)
    assert per_row[1]["extracted"]["json_fields"]["fields"] == {"name": False, "age": True, "city": True}
    assert "not JSON" in per_row[3]["failures"]["json_fields"]


def test_json_fields_skips_references_that_are_not_objects_and_counts_keys_per_reference():
    references = ['{"a": 1, "b": 2}', "not json", '{"a": 1}', "{}"]
    predictions = ['{"a": 1, "b": 3}', '{"a": 1}', '{"a": 2}', '{"a": 1}']
    aggregate, per_row = score_generations(["json_fields"], predictions, references)
    assert [row["scores"]["json_fields"] for row in per_row] == [0.5, None, 0.0, None]
    assert aggregate == {"json_fields": 0.25, "json_field.a": 0.5, "json_field.b": 0.0}  # a: 1 of 2 rows
    assert per_row[1]["failures"]["json_fields"].startswith("reference not scored")


def test_json_equal_is_exact():
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal(None, 0)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal([1, 2], [2, 1])
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


def test_contains_looks_for_the_normalised_reference():
    pairs = [("The capital is PARIS.", "paris"), ("Par is", "paris"), ("anything", "")]
    assert _scores("contains", pairs) == [1.0, 0.0, 1.0]


def test_score_generations_returns_every_chosen_metric_and_ignores_the_others():
    aggregate, per_row = score_generations(
        ["loss", "exact_match", "contains"], ["Paris.", "Rome"], ["paris", "Paris"]
    )
    assert aggregate == {"exact_match": 0.5, "contains": 0.5}
    assert per_row[0] == {"scores": {"exact_match": 1.0, "contains": 1.0}, "extracted": {}, "failures": {}}
    assert score_generations(["exact_match"], [], []) == ({}, [])
    with pytest.raises(ValueError, match="unknown metrics: bleu"):
        score_generations(["bleu"], ["a"], ["a"])
    with pytest.raises(ValueError, match="answer_regex"):
        score_generations(["answer_match"], ["a"], ["a"])


def test_defaults_and_the_always_measured_metrics():
    assert default_metrics("causal-lm") == ["loss", "perplexity"]
    assert default_metrics("causal-lm", generate=4) == ["loss", "perplexity", "exact_match"]
    assert resolve_metrics("causal-lm", ["json_valid"], 4) == ["loss", "perplexity", "json_valid"]
    assert resolve_metrics("classification", "auto") == [
        "loss",
        "accuracy",
        "macro_f1",
        "precision",
        "recall",
    ]
    assert resolve_metrics("classification", ["macro_f1"]) == ["loss", "accuracy", "macro_f1"]
    for spec in METRICS.values():
        assert (
            spec.compares.endswith(".")
            and spec.tasks
            and spec.kind in ("loss", "generation", "classification")
        )
