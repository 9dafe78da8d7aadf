"""No column is silently ignored: every column the detected format does not read is reported, and a column of
repeated short values beside a text column is recognised as class labels, whatever its name (issue 12, item 6)."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from ftkit.data.check import check_file
from ftkit.data.columns import LABEL_RULE, find_label_column
from ftkit.data.dataset import load_run_data
from tests.data.conftest import cli, shared

CATEGORIES = ["billing", "shipping", "returns"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def support_rows(count: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        category = rng.choice(CATEGORIES)
        rows.append(
            [f"ticket {i}: a question about my {category} problem, order {rng.randint(0, 9999)}", category]
        )
    return rows


@pytest.mark.parametrize("name", ["category", "intent", "Label", "target", "zzz"])
def test_text_and_a_label_column_of_any_name_reports_it_as_labels(tmp_path, name):
    rows = support_rows(60)
    path = write_csv(tmp_path / "tickets.csv", ["text", name], rows)
    result = cli("data", "check", str(path), "--json")
    report = json.loads(result.stdout)
    expected = Counter(row[1] for row in rows)
    assert report["format"] == "text"
    assert report["unused_columns"] == [name]
    unused = [p for p in report["problems"] if p["code"] == "unused-column"]
    assert [p["key"] for p in unused] == [name] and unused[0]["severity"] == "warning"
    assert f"--format classification --columns label={name}" in unused[0]["message"]
    guess = report["label_column"]
    assert guess["column"] == name and guess["text"] == "text"
    assert guess["classes"] == len(expected) == 3
    assert f"{len(expected)} distinct values over 60 rows" in guess["evidence"]
    assert guess["rule"] == LABEL_RULE
    assert result.exit_code == 0  # a warning, not an error


def test_human_output_names_the_unused_column(tmp_path):
    path = write_csv(tmp_path / "tickets.csv", ["text", "category"], support_rows(40))
    result = cli("data", "check", str(path))
    assert result.exit_code == 0
    assert "column `category` is not used by the text format" in result.stdout
    assert "looks like class labels" in result.stdout


def test_a_column_of_unique_values_is_unused_but_not_labels(tmp_path):
    rows = [[text, str(i)] for i, (text, _) in enumerate(support_rows(40))]
    path = write_csv(tmp_path / "tickets.csv", ["text", "ticket_id"], rows)
    report = check_file(path, tokens=False)
    assert report.unused_columns == ["ticket_id"]
    assert report.label_column is None
    (warning,) = [p for p in report.warnings if p.code == "unused-column"]
    assert "looks like class labels" not in warning.message


def test_the_ten_percent_edge():
    text = [f"a sentence long enough to be the text, number {i}" for i in range(20)]
    two = [{"text": t, "y2": "ab"[i % 2]} for i, t in enumerate(text)]  # 2 distinct of 20 = 10 %: labels
    three = [{"text": t, "y3": "abc"[i % 3]} for i, t in enumerate(text)]  # 3 of 20 = 15 %: not labels
    assert find_label_column(two).label == "y2"
    assert find_label_column(three) is None
    one = [{"text": t, "y1": "a"} for t in text]  # a single value is no classes
    assert find_label_column(one) is None


def test_long_values_are_not_labels_and_no_text_column_means_no_labels():
    rows = [{"text": f"short {i}", "note": ("x" * 120) + "ab"[i % 2]} for i in range(40)]
    assert find_label_column(rows) is None
    chat = [{"category": "ab"[i % 2], "messages": [{"role": "user", "content": "hi"}]} for i in range(40)]
    assert find_label_column(chat) is None  # a list of turns is not a text column


def test_integer_labels_are_labels():
    rows = [{"review": f"this product review number {i} says things", "stars": 1 + i % 5} for i in range(60)]
    guess = find_label_column(rows)
    assert (guess.label, guess.text, guess.classes) == ("stars", "review", 5)
    assert guess.mapping() == {"text": "review", "label": "stars"}


def test_run_data_carries_one_warning_per_unused_column(tmp_path):
    rows = [[text, category, "web"] for text, category in support_rows(40)]
    path = write_csv(tmp_path / "tickets.csv", ["text", "category", "channel"], rows)
    data = load_run_data(path, None, "text", {}, None, 42)
    assert [w.split("column `")[1].split("`")[0] for w in data.unused_columns] == ["category", "channel"]


def test_chatterbot_reports_its_category_column():
    path = shared("chatterbot-chat/messages.jsonl")
    report = check_file(path, tokens=False)
    assert report.format == "chat"
    assert report.unused_columns == ["category"]
    assert report.label_column is None  # beside `messages`, not a text column


def test_sms_spam_and_gsm8k_use_every_column():
    sms = check_file(shared("sms-spam/SMSSpamCollection.tsv"), tokens=False)
    assert sms.format == "classification" and sms.columns == {"label": "Label", "text": "SMS"}
    assert sms.unused_columns == []
    gsm = check_file(shared("gsm8k/train.jsonl"), tokens=False)
    assert gsm.format == "completion" and gsm.unused_columns == []
