"""Telling a Hugging Face Hub id from a local path: one pattern for models and data sets."""

from __future__ import annotations

import re
from pathlib import Path

# `name` or `owner/name`: letters, digits, `_`, `.` and `-`, each part starting the way the Hub requires.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_model_id(value: str) -> bool:
    """`name` or `owner/name` (`gpt2`, `HuggingFaceTB/SmolLM2-135M`): the shape of a Hub model id."""
    return bool(HUB_ID.match(value))


def is_hub_dataset_id(value: str) -> bool:
    """`owner/name` with no file suffix: a Hub dataset id rather than a local file such as `data/train.jsonl`."""
    return "/" in value and not Path(value).suffix and is_hub_model_id(value)
