"""Encoding run data into model rows: the task must fit the data, classification labels, counted truncation.
(Chat rows with loss masks: tests/data/test_render.py.)"""

from __future__ import annotations

import pytest

from ftkit.data.dataset import load_run_data
from ftkit.data.encode import check_task_format, class_labels, encode_rows
from ftkit.errors import DataError

from .conftest import write_lines


def _data(tmp_path, train: list[dict], eval_: list[dict] | None = None):
    train_path = write_lines(tmp_path / "train.jsonl", train)
    eval_path = write_lines(tmp_path / "eval.jsonl", eval_) if eval_ else None
    return load_run_data(train_path, eval_path, "auto", {}, None, seed=0)


def test_classification_rows_are_text_ids_and_the_label_index(tmp_path, tiny_tokenizer):
    short, long = "the red fox", "the cat is " * 30
    data = _data(
        tmp_path,
        [{"text": short, "label": "warm"}, {"text": long, "label": "cool"}],
        [{"text": "the blue owl", "label": "cool"}],
    )
    labels = class_labels(data)
    assert labels == ["cool", "warm"]  # sorted: a label's index is its class id
    encoded = encode_rows(data, tiny_tokenizer, max_seq_len=16, labels=labels)
    expected_short = tiny_tokenizer(short)["input_ids"]
    expected_long = tiny_tokenizer(long)["input_ids"]
    assert encoded.train == [
        {"input_ids": expected_short, "labels": 1},
        {"input_ids": expected_long[:16], "labels": 0},
    ]
    assert encoded.eval == [{"input_ids": tiny_tokenizer("the blue owl")["input_ids"], "labels": 0}]
    assert (encoded.truncated_rows, encoded.truncated_tokens) == (1, len(expected_long) - 16)
    assert encoded.dropped_rows == 0
    assert encoded.warnings == [
        f"1 train rows longer than max_seq_len=16 were truncated ({len(expected_long) - 16} tokens lost)"
    ]


def test_an_eval_label_never_trained_on_is_refused(tmp_path):
    data = _data(
        tmp_path,
        [{"text": "the red fox", "label": "warm"}, {"text": "a blue owl", "label": "cool"}],
        [{"text": "a grey hen", "label": "neutral"}, {"text": "a pink pig", "label": "bright"}],
    )
    with pytest.raises(DataError) as caught:
        class_labels(data)
    assert "eval labels not seen in train: bright, neutral" in str(caught.value)


def test_the_task_must_fit_the_data_format(tmp_path):
    classified = _data(tmp_path, [{"text": "the red fox", "label": "warm"}] * 2)
    with pytest.raises(
        DataError, match="task is causal-lm but the data is in classification format"
    ) as caught:
        check_task_format("causal-lm", classified)
    assert caught.value.hint == "set task: classification"
    check_task_format("classification", classified)

    text = _data(tmp_path, [{"text": "the red fox"}, {"text": "a blue owl"}])
    with pytest.raises(DataError, match="task is classification but the data is in text format"):
        check_task_format("classification", text)
    check_task_format("causal-lm", text)
