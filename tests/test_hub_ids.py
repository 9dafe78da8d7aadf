"""Hub ids versus local paths: the one pattern recipes (models, data) and the data readers share."""

from __future__ import annotations

import pytest

from ftkit.hub_ids import is_hub_dataset_id, is_hub_model_id


@pytest.mark.parametrize(
    ("value", "model", "dataset"),
    [
        ("gpt2", True, False),  # a model id may have no owner; a dataset id here always has one
        ("HuggingFaceTB/SmolLM2-135M-Instruct", True, True),
        ("tatsu-lab/alpaca", True, True),
        ("data/train.jsonl", True, False),  # a file suffix: a local file, not a data set on the Hub
        ("owner/name/extra", False, False),
        ("./model", False, False),
        ("/abs/path", False, False),
        ("~/models/x", False, False),
        ("-bad/name", False, False),
        ("owner/", False, False),
        ("", False, False),
    ],
)
def test_hub_ids(value, model, dataset):
    assert is_hub_model_id(value) is model
    assert is_hub_dataset_id(value) is dataset
