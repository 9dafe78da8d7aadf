"""`ftkit data check` on preference data: token lengths of prompt, chosen and rejected (estimated and exact), pairs
whose answers are the same, and TRL's conversational rows (message lists) accepted or refused at their line."""

from __future__ import annotations

import json
import math

import pytest

from ftkit.data.check import check_file

from .conftest import cli, write_lines

PAIRS = [
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I will not."},  # 14, 5, 11 characters
    {"prompt": "2+2?", "chosen": "It is four.", "rejected": "five"},  # 4, 11, 4
    {"prompt": "Say hello politely.", "chosen": "Hello there!", "rejected": "hello there! "},  # 19, 12, 13
]
CHAT = [
    {
        "prompt": [{"role": "user", "content": "What is the capital of France?"}],
        "chosen": [{"role": "assistant", "content": "Paris."}],
        "rejected": [{"role": "assistant", "content": "Lyon, I think."}],
    },
    {  # a string prompt beside message-list answers: one user turn
        "prompt": "Pick a number.",
        "chosen": [{"role": "assistant", "content": "Seven."}],
        "rejected": [{"role": "assistant", "content": "No."}],
    },
]


def test_estimated_pair_lengths_are_characters_over_four(tmp_path):
    path = write_lines(tmp_path / "pairs.jsonl", PAIRS)
    result = cli("data", "check", str(path), "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["tokens_estimated"]
    pair = stats["preference"]
    # ceil(characters / 4), by hand from the comments above
    assert pair["prompt"] == {"tokens": 4 + 1 + 5, "min": 1, "mean": 3.3, "median": 4, "p95": 5, "max": 5}
    assert pair["chosen"] == {"tokens": 2 + 3 + 3, "min": 2, "mean": 2.7, "median": 3, "p95": 3, "max": 3}
    assert pair["rejected"] == {"tokens": 3 + 1 + 4, "min": 1, "mean": 2.7, "median": 3, "p95": 4, "max": 4}
    human = cli("data", "check", str(path))
    assert "Preference pair tokens, estimated" in human.output
    for part in ("prompt", "chosen", "rejected"):
        assert part in human.output


def test_estimated_chat_pair_lengths_use_the_default_chatml(tmp_path):
    path = write_lines(tmp_path / "chat-pairs.jsonl", CHAT[:1])
    pair = check_file(path).stats["preference"]
    head = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    assert pair["prompt"]["tokens"] == math.ceil(len(head) / 4)
    assert pair["chosen"]["tokens"] == math.ceil(len("Paris.<|im_end|>\n") / 4)
    assert pair["rejected"]["tokens"] == math.ceil(len("Lyon, I think.<|im_end|>\n") / 4)


def _trl_pair(tokenizer, row: dict) -> tuple[int, int, int]:
    """The reference: TRL's own tokenizing helpers, as its DPOTrainer splits a pair (EOS added to strings)."""
    from trl.data_utils import _tokenize, common_prefix_length

    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str):
        chosen, rejected = chosen + tokenizer.eos_token, rejected + tokenizer.eos_token
        prompt_ids = _tokenize(tokenizer, row["prompt"])["input_ids"]
        full = [_tokenize(tokenizer, row["prompt"] + answer)["input_ids"] for answer in (chosen, rejected)]
    else:
        prompt = (
            row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        )
        prompt_ids = _tokenize(tokenizer, prompt, add_generation_prompt=True)["input_ids"]
        full = [_tokenize(tokenizer, prompt + answer)["input_ids"] for answer in (chosen, rejected)]
    shared = min(common_prefix_length(prompt_ids, ids) for ids in full)
    return shared, len(full[0]) - shared, len(full[1]) - shared


@pytest.mark.parametrize("rows", [PAIRS, CHAT], ids=["strings", "messages"])
def test_exact_pair_lengths_match_trl(tmp_path, tiny_tokenizer, tiny_tokenizer_dir, rows):
    path = write_lines(tmp_path / "pairs.jsonl", rows)
    expected = [_trl_pair(tiny_tokenizer, row) for row in rows]
    result = cli("data", "check", str(path), "--model", str(tiny_tokenizer_dir), "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert not stats["tokens_estimated"]
    for index, part in enumerate(("prompt", "chosen", "rejected")):
        counts = [counts[index] for counts in expected]
        assert stats["preference"][part]["tokens"] == sum(counts)
        assert (stats["preference"][part]["min"], stats["preference"][part]["max"]) == (
            min(counts),
            max(counts),
        )
    if rows is CHAT:
        assert stats["chat_template"] == "the model's"


def test_same_answers_are_a_located_warning(tmp_path):
    rows = [
        PAIRS[0],
        {"prompt": "Say yes.", "chosen": "Yes.", "rejected": "  Yes.\n"},  # the same once stripped
        {"prompt": "Say no.", "chosen": "No.", "rejected": "no."},  # differs in case: a real preference
        {**CHAT[0], "rejected": [{"role": "assistant", "content": " Paris. "}]},
    ]
    path = write_lines(tmp_path / "same.jsonl", rows)
    report = check_file(path)
    same = [(p.line, p.key, p.severity) for p in report.problems if p.code == "same-pair"]
    assert same == [(2, "rejected", "warning"), (4, "rejected", "warning")]
    result = cli("data", "check", str(path))
    assert result.exit_code == 0
    assert f"{path}:2: rejected: `chosen` and `rejected` are the same text" in " ".join(result.output.split())
    assert cli("data", "check", str(path), "--strict").exit_code == 1


def test_chat_preference_rows_are_accepted_in_trl_form(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", CHAT)
    report = check_file(path)
    assert report.format == "preference" and not report.problems
    assert report.examples[0].data == CHAT[0]
    assert report.examples[1].data["prompt"] == [{"role": "user", "content": "Pick a number."}]
    assert cli("data", "check", str(path)).exit_code == 0


ASSISTANT = [{"role": "assistant", "content": "ok"}]


@pytest.mark.parametrize(
    ("row", "key", "code"),
    [
        ({"prompt": "p", "chosen": ASSISTANT, "rejected": "plain"}, "rejected", "wrong-type"),
        ({"prompt": "p", "chosen": "plain", "rejected": ASSISTANT}, "chosen", "wrong-type"),
        ({"prompt": "p", "chosen": [], "rejected": ASSISTANT}, "chosen", "empty-field"),
        (
            {"prompt": "p", "chosen": [{"content": "x"}], "rejected": ASSISTANT},
            "chosen[0].role",
            "missing-field",
        ),
        (
            {"prompt": "p", "chosen": [{"role": "bot", "content": "x"}], "rejected": ASSISTANT},
            "chosen[0].role",
            "unknown-role",
        ),
        (
            {"prompt": "p", "chosen": ASSISTANT, "rejected": [{"role": "assistant", "content": 3}]},
            "rejected[0].content",
            "wrong-type",
        ),
        (
            {"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": ASSISTANT},
            "chosen",
            "not-ending-in-assistant",
        ),
        (
            {"prompt": [{"role": "user"}], "chosen": ASSISTANT, "rejected": ASSISTANT},
            "prompt[0].content",
            "missing-field",
        ),
        ({"prompt": 7, "chosen": ASSISTANT, "rejected": ASSISTANT}, "prompt", "wrong-type"),
        ({"chosen": ASSISTANT, "rejected": ASSISTANT, "prompt": None}, "prompt", "missing-field"),
    ],
)
def test_malformed_chat_preference_rows_are_located(tmp_path, row, key, code):
    path = write_lines(tmp_path / "bad.jsonl", [CHAT[0], row, CHAT[1]])
    report = check_file(path, "preference")
    assert [(p.line, p.key, p.code) for p in report.errors] == [(2, key, code)]
    result = cli("data", "check", str(path), "--format", "preference")
    assert result.exit_code == 2
    assert f"{path}:2: {key}:" in " ".join(result.output.split())


def test_empty_rejected_turn_still_trains_with_a_warning(tmp_path):
    row = {**CHAT[0], "rejected": [{"role": "assistant", "content": ""}]}
    report = check_file(write_lines(tmp_path / "empty.jsonl", [row]))
    assert not report.errors
    assert [(p.line, p.code) for p in report.warnings if p.code != "short"] == [(1, "empty-rejected")]
