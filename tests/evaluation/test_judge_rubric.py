"""Rubrics (placeholders, located errors), strict verdict parsing, and agreement with exact match (Cohen's kappa
computed by hand)."""

from __future__ import annotations

import pytest

from ftkit.errors import UsageError
from ftkit.evaluation.judge import agreement, default_rubric, load_rubric
from ftkit.evaluation.judge_rubric import parse_rubric, parse_verdict, parse_winner


def test_rubric_file_fills_in_one_pass(tmp_path):
    path = tmp_path / "rubric.md"
    path.write_text(
        '# Grade\nQ: {prompt}\nR: {reference}\nA: {answer}\nReply as {"verdict": ...} or { answer }.\n'
    )
    rubric = load_rubric(path)
    assert rubric.source == str(path) and rubric.mode == "single"
    filled = rubric.fill(prompt="p {answer}", reference="r", answer="a {prompt}")
    assert filled == '# Grade\nQ: p {answer}\nR: r\nA: a {prompt}\nReply as {"verdict": ...} or { answer }.\n'


def test_unknown_placeholders_are_located(tmp_path):
    path = tmp_path / "rubric.md"
    path.write_text("Question: {prompt}\n\nAnswer: {answer}  Gold: {gold} and {answer_1}\n")
    with pytest.raises(UsageError) as caught:
        load_rubric(path)
    assert caught.value.exit_code == 2
    assert caught.value.problems == [
        f"{path}:3:25: unknown placeholder {{gold}} (single mode knows {{prompt}} {{reference}} {{answer}})",
        f"{path}:3:36: unknown placeholder {{answer_1}} (single mode knows {{prompt}} {{reference}} {{answer}})",
    ]


def test_rubric_without_the_answer_or_file_is_an_error(tmp_path):
    with pytest.raises(UsageError) as caught:
        parse_rubric("Is {prompt} answered?", source="r.md")
    assert caught.value.problems == [
        "r.md: missing placeholder {answer}: the judge would never see the answer"
    ]
    with pytest.raises(UsageError) as caught:
        parse_rubric("{answer_1} vs {answer}", mode="pairwise")
    assert caught.value.problems == [
        "<rubric>:1:15: unknown placeholder {answer} (pairwise mode knows {prompt} {reference} {answer_1} {answer_2})",
        "<rubric>: missing placeholder {answer_2}: the judge would never see the answer",
    ]
    with pytest.raises(UsageError, match="rubric file .*nope.md not found"):
        load_rubric(tmp_path / "nope.md")
    with pytest.raises(UsageError, match="rubric is empty"):
        parse_rubric("  \n")


def test_default_rubrics_validate():
    for mode in ("single", "pairwise"):
        rubric = default_rubric(mode)
        assert parse_rubric(rubric.text, mode=mode).text == rubric.text


def test_pairwise_rubric_is_refused_in_single_mode():
    from ftkit.evaluation.judge import judge_answers

    with pytest.raises(UsageError, match="is a pairwise rubric, but single judging was asked"):
        judge_answers(None, [], default_rubric("pairwise"))


@pytest.mark.parametrize(
    ("text", "passed", "score", "problem"),
    [
        ("fine\nVERDICT: PASS\nSCORE: 8", True, 8, None),
        ("**Verdict:** fail\n`SCORE: 3/10`", False, 3, None),
        ("VERDICT: PASS\nSCORE: 8\nto be sure:\nVERDICT: PASS", True, 8, None),
        ("nothing here", None, None, "no VERDICT line"),
        ("VERDICT: PASS", None, None, "no SCORE line"),
        (
            "VERDICT: PASS or FAIL\nSCORE: 5",
            None,
            None,
            "VERDICT line is not PASS or FAIL: 'VERDICT: PASS or FAIL'",
        ),
        ("VERDICT: PASS\nVERDICT: FAIL\nSCORE: 5", None, None, "VERDICT lines disagree"),
        ("VERDICT: PASS\nSCORE: 11", None, None, "SCORE line is not an integer from 1 to 10: 'SCORE: 11'"),
        ("VERDICT: PASS\nSCORE: 7.5", None, None, "SCORE line is not an integer from 1 to 10: 'SCORE: 7.5'"),
        ("VERDICT: FAIL\nSCORE: 2\nSCORE: 3", None, None, "SCORE lines disagree"),
        ("The verdict: PASS\nSCORE: 9", None, None, "no VERDICT line"),
    ],
)
def test_verdicts_parse_strictly(text, passed, score, problem):
    verdict = parse_verdict(text)
    assert (verdict.passed, verdict.score, verdict.problem) == (passed, score, problem)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WINNER: 1", ("1", None)),
        ("because...\n**Winner: tie**", ("tie", None)),
        ("WINNER: 1, 2 or TIE", (None, "WINNER line is not 1, 2 or TIE: 'WINNER: 1, 2 or TIE'")),
        ("WINNER: 1\nWINNER: 2", (None, "WINNER lines disagree")),
        ("Answer 1 is better", (None, "no WINNER line")),
    ],
)
def test_winners_parse_strictly(text, expected):
    assert parse_winner(text) == expected


def test_kappa_by_hand():
    # 10 rows: both pass 4, judge only 1, exact only 2, both fail 3.
    judge = [True] * 4 + [True] + [False] * 2 + [False] * 3
    exact = [True] * 4 + [False] + [True] * 2 + [False] * 3
    report = agreement(judge, exact)
    # p_o = 7/10; judge passes 5/10, exact 6/10; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4
    assert report["counts"] == {"both_pass": 4, "judge_only": 1, "exact_only": 2, "both_fail": 3}
    assert report["rows"] == 10 and report["skipped"] == 0
    assert report["percent_agreement"] == pytest.approx(70.0)
    assert report["kappa"] == pytest.approx(0.4)


def test_kappa_skips_unparsed_and_handles_degenerate_cases():
    # unparsed verdicts are left out: what remains is 2 agreeing rows of opposite labels -> kappa 1
    report = agreement([True, None, False, None], [True, True, False, False])
    assert report["rows"] == 2 and report["skipped"] == 2 and report["kappa"] == pytest.approx(1.0)
    # always disagreeing, both raters balanced: p_o = 0, p_e = 0.5 -> kappa -1
    assert agreement([True, False], [False, True])["kappa"] == pytest.approx(-1.0)
    # one label everywhere from both raters: chance agreement is 1, kappa undefined
    same = agreement([True, True], [True, True])
    assert same["percent_agreement"] == 100.0 and same["kappa"] is None
    assert agreement([None], [True]) == {
        "rows": 0,
        "skipped": 1,
        "counts": {"both_pass": 0, "judge_only": 0, "exact_only": 0, "both_fail": 0},
        "percent_agreement": None,
        "kappa": None,
    }
    with pytest.raises(UsageError, match="2 judge verdicts but 1 exact-match results"):
        agreement([True, False], [True])
