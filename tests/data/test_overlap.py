"""Train/eval overlap: planted duplicates counted with their lines, eval_split by content, runs record it."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ftkit.data.dataset import deterministic_split, load_checked, load_run_data
from ftkit.data.overlap import find_overlap

from .conftest import cli, shared, write_lines


def _chat(user: str, reply: str, role: str = "user") -> dict:
    return {"messages": [{"role": role, "content": user}, {"role": "assistant", "content": reply}]}


TRAIN = [_chat(f"question number {i} about foxes", f"answer {i}") for i in range(1, 11)]
# eval line: what it plants (train line numbers are 1-based, TRAIN[k] is line k + 1)
EVAL = [
    _chat("a new question", "a new answer"),  # 1: new
    TRAIN[4],  # 2: exact copy of train line 5
    _chat("  Question NUMBER 3   about\tfoxes ", "ANSWER 3"),  # 3: train line 3 after normalising
    _chat("question number 3 about foxes", "answer 4"),  # 4: same question, other answer: new
    _chat("question number 2 about foxes", "answer 2", role="system"),  # 5: other role: new
    TRAIN[4],  # 6: exact copy of train line 5 again
    TRAIN[9],  # 7: exact copy of train line 10
]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    return write_lines(tmp_path / "train.jsonl", TRAIN), write_lines(tmp_path / "eval.jsonl", EVAL)


def test_planted_exact_and_normalised_duplicates_are_counted_with_lines(tmp_path):
    train, evaluation = _files(tmp_path)
    overlap = find_overlap(
        load_checked(train, "auto", {}).examples, load_checked(evaluation, "chat", {}).examples
    )
    assert (overlap.eval_rows, overlap.exact_rows, overlap.normalized_rows) == (7, 3, 4)
    assert [(m.eval_line, m.train_line, m.exact) for m in overlap.matches] == [
        (2, 5, True),
        (3, 3, False),
        (6, 5, True),
        (7, 10, True),
    ]
    assert "eval line 2 = train line 5" in overlap.describe()


FORMATS = {
    "completion": (
        {"prompt": "what is two plus two", "completion": "four"},
        {"prompt": "What is  two plus two", "completion": "FOUR"},
        {"prompt": "what is two plus two", "completion": "five"},
    ),
    "instruction": (
        {"instruction": "add one", "input": "41", "output": "42"},
        {"instruction": "Add one", "input": " 41", "output": "42"},
        {"instruction": "add one", "input": "41", "output": "43"},
    ),
    "classification": (
        {"text": "the fox is red", "label": "warm"},
        {"text": "The fox  is red", "label": "warm"},
        {"text": "the fox is red", "label": "cool"},
    ),
    "text": ({"text": "plain text row"}, {"text": "Plain\ntext row"}, {"text": "plain text rows"}),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_field_of_the_format_counts(tmp_path, fmt):
    row, normalised_copy, differs_in_one_field = FORMATS[fmt]
    filler = [FORMATS[fmt][0] | {key: f"{value} filler {i}" for key, value in row.items()} for i in range(3)]
    train = write_lines(tmp_path / "train.jsonl", [*filler, row])
    evaluation = write_lines(tmp_path / "eval.jsonl", [differs_in_one_field, row, normalised_copy])
    overlap = find_overlap(load_checked(train, fmt, {}).examples, load_checked(evaluation, fmt, {}).examples)
    assert (overlap.exact_rows, overlap.normalized_rows) == (1, 2)
    assert [(m.eval_line, m.train_line, m.exact) for m in overlap.matches] == [(2, 4, True), (3, 4, False)]


def test_data_check_with_eval_reports_overlap_as_a_warning(tmp_path):
    train, evaluation = _files(tmp_path)
    result = cli("data", "check", str(train), "--eval", str(evaluation))
    assert result.exit_code == 0, result.output
    assert "4 of 7 eval rows repeat a train row (3 exactly, 1 after normalising" in result.output
    table = result.output[result.output.index("Eval rows that repeat train rows") :].splitlines()
    # Piped output (not a terminal): a header line, then one tab-separated line per row.
    assert table[1].split("\t") == ["eval line", "train line", "match"]
    rows = [line.split("\t") for line in itertools.takewhile(lambda line: "\t" in line, table[2:])]
    assert rows == [["2", "5", "exact"], ["3", "3", "normalised"], ["6", "5", "exact"], ["7", "10", "exact"]]
    assert cli("data", "check", str(train), "--eval", str(evaluation), "--strict").exit_code == 1
    clean = write_lines(tmp_path / "clean.jsonl", [_chat("never seen before", "indeed")])
    assert cli("data", "check", str(train), "--eval", str(clean), "--strict").exit_code == 0


def test_data_check_with_eval_json(tmp_path):
    train, evaluation = _files(tmp_path)
    result = cli("data", "check", str(train), "--eval", str(evaluation), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["overlap"]["exact_rows"] == 3 and payload["overlap"]["normalized_rows"] == 4
    assert payload["overlap"]["matches"][1] == {"eval_line": 3, "train_line": 3, "exact": False}
    assert payload["eval"]["path"] == str(evaluation) and payload["eval"]["valid_rows"] == 7
    assert payload["eval"]["format"] == "chat"


def test_data_check_with_a_broken_eval_file_exits_2(tmp_path):
    train, _ = _files(tmp_path)
    broken = write_lines(tmp_path / "eval.jsonl", [EVAL[0], "{not json"])
    result = cli("data", "check", str(train), "--eval", str(broken), "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["eval"]["problems"]
    assert problems[0]["line"] == 2 and problems[0]["severity"] == "error"


def _said(text: str) -> str:
    """The test's own normalisation (regex, not str.split), independent of ftkit.data.overlap."""
    return re.sub(r"\s+", " ", text).strip().lower()


def test_eval_split_keeps_copies_on_one_side(tmp_path):
    distinct = [{"text": f"sentence {i} of the corpus"} for i in range(12)]
    rows = distinct + [distinct[i] for i in (0, 0, 1, 2, 3, 3, 3)] + [{"text": "SENTENCE 5  of the corpus"}]
    copies = Counter(_said(row["text"]) for row in rows)
    path = write_lines(tmp_path / "train.jsonl", rows)
    for seed in range(10):  # several seeds, so held-out contents with and without copies are exercised
        data = load_run_data(path, None, "auto", {}, 0.25, seed=seed)
        train_contents = {_said(e.data["text"]) for e in data.train}
        eval_contents = [_said(e.data["text"]) for e in data.eval]
        assert not train_contents & set(eval_contents), seed
        assert len(eval_contents) == len(set(eval_contents)) == 3  # a quarter of the 12 distinct contents
        assert len(data.train) == sum(copies[content] for content in train_contents)  # train keeps its copies
        assert data.overlap.exact_rows == data.overlap.normalized_rows == 0
        dropped = sum(copies[content] - 1 for content in eval_contents)
        assert len(data.train) + len(data.eval) + dropped == len(rows)
        assert "8 of 20 train rows repeat another" in data.split
        assert f"{dropped} copies of held-out rows dropped" in data.split
        assert f"{8 - dropped} kept in train" in data.split


def test_eval_split_on_the_real_chat_data_has_no_overlap(tmp_path):
    source = shared("chatterbot-chat/messages.jsonl")
    kept = [
        line for number, line in enumerate(source.read_text().splitlines(), 1) if number != 1779
    ]  # broken row
    path = tmp_path / "chatterbot.jsonl"
    path.write_text("\n".join(kept) + "\n")
    data = load_run_data(path, None, "auto", {}, 0.1, seed=42)
    train = {json.dumps(e.data["messages"]) for e in data.train}
    held_out = [json.dumps(e.data["messages"]) for e in data.eval]
    assert not train & set(held_out)
    assert len(held_out) == len(set(held_out)) == 90  # 10% of the 898 distinct conversations
    assert len(train) == 898 - 90
    assert (data.overlap.exact_rows, data.overlap.normalized_rows) == (0, 0)
    assert "1127 of 2025 train rows repeat another" in data.split
    # what a split by row index (the old behaviour) does on the same rows: held-out rows repeat train rows
    rows, held = deterministic_split(
        [json.dumps(json.loads(line)["messages"]) for line in kept], 0.1, seed=42
    )
    assert len(set(rows) & set(held)) > 0


def test_a_run_records_eval_overlap_in_its_metrics_and_warns(tmp_path, tiny_model_dir):
    from tests.conftest import write_recipe

    train, evaluation = _files(tmp_path)
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, train, evaluation)
    recipe.write_text(recipe.read_text().replace("max_steps: 12", "max_steps: 2"))
    registry = tmp_path / "registry"
    result = cli("run", str(recipe), "--json", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert (metrics["data.eval_overlap_rows"], metrics["data.eval_overlap_rows_normalized"]) == (3, 4)
    assert "eval overlap: 4 of 7 eval rows repeat a train row" in result.stderr
    shown = cli("show", "@latest", "--json", "--registry", str(registry))
    assert shown.exit_code == 0, shown.output
    stored = json.loads(shown.stdout)
    assert stored["metrics"]["data.eval_overlap_rows"] == 3
    assert stored["metrics"]["data.eval_overlap_rows_normalized"] == 4
