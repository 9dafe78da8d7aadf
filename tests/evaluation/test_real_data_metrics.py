"""The metrics on real data (../shared/data; skipped when absent, failing under CI=true).

GSM8K: `answer_match` with `#### (.+)` and `numeric_match` score the train file's own answers 1.0 against
themselves, and against shuffled answers exactly the fraction of rows whose final answers happen to be equal
(counted here with a plain split on `####`), which is near 0. SMS spam: `classification_report` on the real labels
against a keyword rule equals accuracy and macro-F1 counted here by hand.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from ftkit.evaluation.scoring import classification_report, score_generations
from tests.conftest import require_shared_data

SHARED_DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def _gsm8k_answers() -> list[str]:
    path = require_shared_data(SHARED_DATA / "gsm8k" / "train.jsonl")
    return [json.loads(line)["answer"] for line in path.read_text().splitlines() if line.strip()]


def test_gsm8k_answer_extraction_against_itself_and_shuffled():
    answers = _gsm8k_answers()
    assert len(answers) == 7473
    aggregate, per_row = score_generations(
        ["answer_match", "numeric_match"], answers, answers, answer_regex="#### (.+)"
    )
    assert aggregate == {"answer_match": 1.0, "numeric_match": 1.0}
    finals = [answer.split("####")[-1].strip() for answer in answers]
    assert [row["extracted"]["answer_match"]["prediction"] for row in per_row] == finals

    shuffled = answers[:]
    random.Random(0).shuffle(shuffled)
    aggregate, _ = score_generations(
        ["answer_match", "numeric_match"], shuffled, answers, answer_regex="#### (.+)"
    )
    # GSM8K's final answers are plain numbers (digits, commas, a sign, decimals), so equal text is equal value
    same = sum(
        a.split("####")[-1].strip() == b.split("####")[-1].strip()
        for a, b in zip(shuffled, answers, strict=True)
    )
    assert aggregate["answer_match"] == pytest.approx(same / len(answers))
    assert aggregate["numeric_match"] == pytest.approx(same / len(answers))
    assert aggregate["answer_match"] < 0.05  # small numbers repeat, so a few rows agree by chance


def _spam_rule(text: str) -> int:
    """An independent, deliberately simple classifier: spam when the text mentions free, txt or call."""
    lowered = text.lower()
    return int(any(word in lowered for word in ("free", "txt", "call")))


def test_sms_spam_report_matches_hand_counts():
    path = require_shared_data(SHARED_DATA / "sms-spam" / "SMSSpamCollection.tsv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["Label", "SMS"]
    rows = rows[1:]
    assert len(rows) == 5574
    labels = ["ham", "spam"]
    targets = [labels.index(label) for label, _ in rows]
    predicted = [_spam_rule(text) for _, text in rows]

    report = classification_report(predicted, targets, labels)

    tp = sum(p == 1 and t == 1 for p, t in zip(predicted, targets, strict=True))
    tn = sum(p == 0 and t == 0 for p, t in zip(predicted, targets, strict=True))
    fp = sum(p == 1 and t == 0 for p, t in zip(predicted, targets, strict=True))
    fn = sum(p == 0 and t == 1 for p, t in zip(predicted, targets, strict=True))
    assert tp + tn + fp + fn == len(rows)
    f1_spam = 2 * tp / (2 * tp + fp + fn)
    f1_ham = 2 * tn / (2 * tn + fn + fp)  # ham's true positives are spam's true negatives
    assert report["accuracy"] == pytest.approx((tp + tn) / len(rows))
    assert report["macro_f1"] == pytest.approx((f1_spam + f1_ham) / 2)
    assert report["precision.spam"] == pytest.approx(tp / (tp + fp))
    assert report["recall.spam"] == pytest.approx(tp / (tp + fn))
    assert report["precision.ham"] == pytest.approx(tn / (tn + fn))
    assert report["recall.ham"] == pytest.approx(tn / (tn + fp))
    assert report["confusion"]["matrix"] == [[tn, fp], [fn, tp]]
    assert 0.5 < report["macro_f1"] < report["accuracy"] < 1.0  # a weak rule on an unbalanced set
