"""AI-assisted evaluation: a judge model scores open-ended answers against the reference and a rubric.

    from ftkit.evaluation.judge import HttpJudge, judge_answers, default_rubric
    judge = HttpJudge("http://127.0.0.1:8000/v1", "qwen2.5-7b-instruct")     # key from FTKIT_JUDGE_API_KEY
    metrics, per_row = judge_answers(judge, [{"prompt": q, "reference": r, "prediction": p}, ...])

Single mode (`judge_answers`) asks for a PASS/FAIL verdict and a 1-10 score per answer. Pairwise mode
(`judge_pairwise`) asks which of two answers is better, twice, with the answers' positions swapped: a row counts for
A or B only when both orders name the same answer; when the orders disagree (the judge preferred a position, not an
answer) the row is a tie and counts against `judge.position_consistency`. `agreement` compares judge verdicts with
exact match (percent agreement and Cohen's kappa).

Unparsed verdicts are counted (`judge.unparsed`) and left out of every rate, never guessed. Per-row records keep the
exact messages sent to the judge and its raw answers, to be stored with the eval record. Backends and rubrics:
`judge_backends`, `judge_rubric`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ftkit.errors import UsageError
from ftkit.evaluation.judge_backends import (
    HttpJudge,
    Judge,
    JudgeError,
    LocalJudge,
    Messages,
    chat_completions_url,
    is_endpoint,
)
from ftkit.evaluation.judge_rubric import (
    Rubric,
    default_rubric,
    load_rubric,
    parse_rubric,
    parse_verdict,
    parse_winner,
)

__all__ = [
    "HttpJudge",
    "Judge",
    "JudgeError",
    "LocalJudge",
    "Rubric",
    "agreement",
    "chat_completions_url",
    "default_rubric",
    "is_endpoint",
    "judge_answers",
    "judge_pairwise",
    "load_rubric",
    "parse_rubric",
]

Progress = Callable[[int, int], None]


def _check_rows(rows: Sequence[dict[str, Any]], keys: tuple[str, ...], function: str) -> None:
    problems = [
        f"row {index}: missing {', '.join(k for k in keys if k not in row)}"
        for index, row in enumerate(rows)
        if any(k not in row for k in keys)
    ]
    if problems:
        raise UsageError(f"{function}: {len(problems)} row(s) lack {', '.join(keys)}", problems=problems[:20])


def _rubric_for(rubric: Rubric | None, mode: str) -> Rubric:
    rubric = rubric or default_rubric(mode)
    if rubric.mode != mode:
        raise UsageError(
            f"rubric {rubric.source} is a {rubric.mode} rubric, but {mode} judging was asked",
            hint=f"load it with load_rubric(path, mode={mode!r})",
        )
    return rubric


def _ask(
    judge: Judge, conversations: list[Messages], batch_size: int, progress: Progress | None
) -> list[str]:
    """All conversations through the judge in batches of `batch_size`, checking it answers each one."""
    answers: list[str] = []
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start : start + batch_size]
        replies = judge.complete(batch)
        if len(replies) != len(batch):
            raise JudgeError(
                f"judge {judge.description} gave {len(replies)} answers to {len(batch)} questions"
            )
        answers.extend(replies)
        if progress:
            progress(len(answers), len(conversations))
    return answers


def judge_answers(
    judge: Judge,
    rows: Sequence[dict[str, Any]],
    rubric: Rubric | None = None,
    *,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score each row's `prediction` against its `reference` (for its `prompt`) with the judge and `rubric`
    (default: correctness and format against the reference). `prompt` is what the judge reads as the question:
    pass the user's text, not a chat-templated string with the model's special tokens.

    Returns (metrics, per_row). Metrics: `judge.rows`, `judge.judged` (verdicts parsed), `judge.unparsed`, and
    over the parsed rows only `judge.pass_rate` and `judge.mean_score` (absent when none parsed). Each per-row
    record: index, prompt, reference, prediction, `judge_messages` (exactly what was sent), `judge_raw` (the
    answer as received), `verdict` ("PASS", "FAIL" or None), `score` (1-10 or None), `parse_error`.
    """
    _check_rows(rows, ("prompt", "reference", "prediction"), "judge_answers")
    rubric = _rubric_for(rubric, "single")
    conversations = [
        [
            {
                "role": "user",
                "content": rubric.fill(
                    prompt=row["prompt"], reference=row["reference"], answer=row["prediction"]
                ),
            }
        ]
        for row in rows
    ]
    raws = _ask(judge, conversations, batch_size, progress)
    per_row, passed, scores = [], [], []
    for index, (row, messages, raw) in enumerate(zip(rows, conversations, raws, strict=True)):
        verdict = parse_verdict(raw)
        if verdict.parsed:
            passed.append(verdict.passed)
            scores.append(verdict.score)
        per_row.append(
            {
                "index": index,
                "prompt": row["prompt"],
                "reference": row["reference"],
                "prediction": row["prediction"],
                "judge_messages": messages,
                "judge_raw": raw,
                "verdict": None if not verdict.parsed else ("PASS" if verdict.passed else "FAIL"),
                "score": verdict.score,
                "parse_error": verdict.problem,
            }
        )
    metrics: dict[str, float] = {
        "judge.rows": len(rows),
        "judge.judged": len(passed),
        "judge.unparsed": len(rows) - len(passed),
    }
    if passed:
        metrics["judge.pass_rate"] = sum(passed) / len(passed)
        metrics["judge.mean_score"] = sum(scores) / len(scores)
    return metrics, per_row


def judge_pairwise(
    judge: Judge,
    rows: Sequence[dict[str, Any]],
    rubric: Rubric | None = None,
    *,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Which of `answer_a` and `answer_b` answers each row's `prompt` better, judged twice per row: A in position 1
    then B in position 1.

    A row's outcome is "A" or "B" when both orders name that answer, "tie" when both say tie or when the orders
    disagree (then `consistent` is False: the verdict followed the position, or a tie in one order only), and
    "unparsed" when either order's answer is unparsed (left out of every rate). Metrics over the judged rows:
    `judge.win_rate_a`, `judge.win_rate_b`, `judge.tie_rate`, `judge.position_consistency` (orders agreeing), and
    `judge.first_position_rate` (of all parsed single-order verdicts naming a winner, how many chose position 1:
    0.5 is unbiased); always `judge.rows`, `judge.judged`, `judge.unparsed`. Per-row records keep both orders'
    messages and raw answers.
    """
    _check_rows(rows, ("prompt", "reference", "answer_a", "answer_b"), "judge_pairwise")
    rubric = _rubric_for(rubric, "pairwise")

    def ask(row: dict[str, Any], first: str, second: str) -> Messages:
        content = rubric.fill(
            prompt=row["prompt"], reference=row["reference"], answer_1=first, answer_2=second
        )
        return [{"role": "user", "content": content}]

    conversations: list[Messages] = []
    for row in rows:
        conversations.append(ask(row, row["answer_a"], row["answer_b"]))
        conversations.append(ask(row, row["answer_b"], row["answer_a"]))
    raws = _ask(judge, conversations, batch_size, progress)
    # position -> answer, per order: order "ab" puts A first, order "ba" puts B first
    names = {"ab": {"1": "A", "2": "B", "tie": "tie"}, "ba": {"1": "B", "2": "A", "tie": "tie"}}
    counts = {"A": 0, "B": 0, "tie": 0}
    consistent_rows, first_position, named_winner = 0, 0, 0
    per_row = []
    for index, row in enumerate(rows):
        orders = {}
        for offset, order in enumerate(("ab", "ba")):
            raw = raws[2 * index + offset]
            position, problem = parse_winner(raw)
            if position in ("1", "2"):
                named_winner += 1
                first_position += position == "1"
            orders[order] = {
                "judge_messages": conversations[2 * index + offset],
                "judge_raw": raw,
                "position": position,
                "winner": names[order][position] if position else None,
                "parse_error": problem,
            }
        first, second = orders["ab"]["winner"], orders["ba"]["winner"]
        if first is None or second is None:
            outcome, consistent = "unparsed", None
        else:
            consistent = first == second
            outcome = first if consistent else "tie"
            counts[outcome] += 1
            consistent_rows += consistent
        per_row.append(
            {
                "index": index,
                "prompt": row["prompt"],
                "reference": row["reference"],
                "answer_a": row["answer_a"],
                "answer_b": row["answer_b"],
                "outcome": outcome,
                "consistent": consistent,
                "orders": orders,
            }
        )
    judged = sum(counts.values())
    metrics: dict[str, float] = {
        "judge.rows": len(rows),
        "judge.judged": judged,
        "judge.unparsed": len(rows) - judged,
    }
    if judged:
        metrics["judge.win_rate_a"] = counts["A"] / judged
        metrics["judge.win_rate_b"] = counts["B"] / judged
        metrics["judge.tie_rate"] = counts["tie"] / judged
        metrics["judge.position_consistency"] = consistent_rows / judged
    if named_winner:
        metrics["judge.first_position_rate"] = first_position / named_winner
    return metrics, per_row


def agreement(judge_pass: Sequence[bool | None], exact: Sequence[bool]) -> dict[str, Any]:
    """How often judge verdicts and exact match agree, row by row. A None verdict (unparsed) is skipped.

    Returns `rows` (compared), `skipped`, `counts` (`both_pass`, `judge_only`, `exact_only`, `both_fail`),
    `percent_agreement` (0-100) and Cohen's `kappa` = (p_o - p_e) / (1 - p_e), where p_e is the agreement the two
    raters' pass rates would give by chance. `kappa` is None when undefined (p_e = 1: both raters gave one same
    label to every row) and both rates are None when no row is compared.
    """
    if len(judge_pass) != len(exact):
        raise UsageError(f"agreement: {len(judge_pass)} judge verdicts but {len(exact)} exact-match results")
    pairs = [(bool(j), bool(e)) for j, e in zip(judge_pass, exact, strict=True) if j is not None]
    counts = {
        "both_pass": sum(j and e for j, e in pairs),
        "judge_only": sum(j and not e for j, e in pairs),
        "exact_only": sum(e and not j for j, e in pairs),
        "both_fail": sum(not j and not e for j, e in pairs),
    }
    n = len(pairs)
    result: dict[str, Any] = {"rows": n, "skipped": len(exact) - n, "counts": counts}
    if not n:
        return result | {"percent_agreement": None, "kappa": None}
    observed = (counts["both_pass"] + counts["both_fail"]) / n
    judge_rate = (counts["both_pass"] + counts["judge_only"]) / n
    exact_rate = (counts["both_pass"] + counts["exact_only"]) / n
    chance = judge_rate * exact_rate + (1 - judge_rate) * (1 - exact_rate)
    kappa = None if chance >= 1.0 else (observed - chance) / (1 - chance)
    return result | {"percent_agreement": 100.0 * observed, "kappa": kappa}
