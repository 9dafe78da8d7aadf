"""The real data sets in ../shared/data: detected as their formats, with the problems they really have.

GSM8K and SMS spam check clean (SMS with warnings). Two files carry genuinely broken rows, which the checker
names; the rest of each file checks clean once those rows are removed:
- chatterbot line 1779 is a conversation split into single characters, with a whitespace-only user turn;
- PandaLM has `"chosen": true` (a boolean, not text) on six rows and an empty `chosen` on line 248.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from ftkit.data.check import check_file, check_rows
from ftkit.data.readers import read_rows

from .conftest import cli, shared


def _codes(problems) -> Counter:
    return Counter(p.code for p in problems)


def test_gsm8k_is_completion_and_clean():
    path = shared("gsm8k/train.jsonl")
    result = cli("data", "check", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "completion" and "question" in report["format_reason"]
    assert report["rows"] == report["valid_rows"] == 7473
    assert report["problems"] == []


def test_sms_spam_is_classification_with_auto_mapped_columns():
    path = shared("sms-spam/SMSSpamCollection.tsv")
    auto = check_file(path)
    assert auto.format == "classification" and auto.columns == {"label": "Label", "text": "SMS"}
    assert not auto.errors and auto.rows == 5574
    assert auto.stats["labels"] == {"ham": 4827, "spam": 747}
    assert _codes(auto.warnings) == {"duplicate": 403, "short": 32, "class-imbalance": 1}
    explicit = cli("data", "check", str(path), "--columns", "text=SMS", "--columns", "label=Label", "--json")
    assert explicit.exit_code == 0
    assert json.loads(explicit.stdout)["stats"]["labels"] == auto.stats["labels"]
    assert cli("data", "check", str(path), "--strict").exit_code == 1


def test_chatterbot_is_chat_with_one_broken_row(tmp_path):
    path = shared("chatterbot-chat/messages.jsonl")
    report = check_file(path)
    assert report.format == "chat" and report.rows == 2026
    assert [(p.line, p.code, p.key) for p in report.errors] == [(1779, "empty-field", "messages[2].content")]
    assert _codes(report.warnings) == {"duplicate": 1127, "short": 2, "unused-column": 1}
    assert cli("data", "check", str(path)).exit_code == 2
    kept = [line for number, line in enumerate(path.read_text().splitlines(), 1) if number != 1779]
    (tmp_path / "fixed.jsonl").write_text("\n".join(kept) + "\n")
    assert cli("data", "check", str(tmp_path / "fixed.jsonl")).exit_code == 0


def test_pandalm_is_preference_with_its_bad_rows_named(tmp_path):
    path = shared("pandalm-preference/pairs_majority.jsonl")
    report = check_file(path)
    assert report.format == "preference" and report.rows == 894
    bad = [(p.line, p.code, p.key) for p in report.errors]
    assert bad == [(n, "wrong-type", "chosen") for n in (140, 141, 142, 144, 145, 147)] + [
        (248, "empty-field", "chosen")
    ]
    assert set(_codes(report.warnings)) == {"duplicate", "empty-rejected", "too-long", "unused-column"}
    assert report.unused_columns == ["id", "agreement", "models", "motivation_app"]
    assert report.label_column is None  # only a text file's extra column is offered as labels
    lines = {line for line, _, _ in bad}
    kept = [line for number, line in enumerate(path.read_text().splitlines(), 1) if number not in lines]
    (tmp_path / "fixed.jsonl").write_text("\n".join(kept) + "\n")
    assert cli("data", "check", str(tmp_path / "fixed.jsonl")).exit_code == 0


def test_gsm8k_token_counts_estimated_and_exact(tiny_tokenizer):
    """All 7,473 rows with estimated tokens; the first 2,000 with the tiny tokenizer (a pessimistic one: its
    400-token vocabulary makes ~460 tokens per row, far more than the characters / 4 estimate). How long the
    checker takes is a benchmark figure, not a test assertion."""
    path = shared("gsm8k/train.jsonl")
    estimated = check_file(path)
    rows, problems = read_rows(path)
    exact = check_rows(str(path), rows[:2000], problems, tokenizer=tiny_tokenizer, max_seq_len=512)
    assert estimated.stats["tokens_estimated"] and not exact.stats["tokens_estimated"]
    assert not exact.errors and exact.stats["tokens"] > estimated.stats["tokens"] * 2000 / 7473


def test_missing_real_data_skips_locally_and_fails_under_ci(monkeypatch):
    """CI must never pass by skipping: with CI=true a missing ../shared/data is a failure, not a skip."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="real data not present"):
        shared("no-such-data-set/rows.jsonl")
    for value in ("true", "True", "1"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            shared("no-such-data-set/rows.jsonl")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        shared("no-such-data-set/rows.jsonl")
