"""Token statistics: counts from characters (no tokenizer) and from a real tokenizer, truncation, dropped rows,
rows a chat template cannot render, and round histogram bins."""

from __future__ import annotations

import copy

from ftkit.data.formats import Example
from ftkit.data.token_stats import CHARS_PER_TOKEN, histogram, token_stats


def test_estimates_from_characters_count_truncated_and_dropped_rows():
    assert CHARS_PER_TOKEN == 4
    examples = [
        Example("f.jsonl", 1, {"text": "x" * 40}),  # 10 tokens, all trained
        Example(
            "f.jsonl", 2, {"prompt": "p" * 40, "completion": "c" * 40}
        ),  # 20 tokens, cut at 8: none trained
        Example("f.jsonl", 3, {"prompt": "p" * 20, "completion": "c" * 20}),  # 10 tokens, cut at 8: 3 trained
    ]
    stats, problems = token_stats("f.jsonl", examples, None, 8, "completion")
    assert stats["tokens"] == 40 and stats["tokens_estimated"] is True
    assert stats["trained_tokens"] == 8 + 0 + 3  # 32 chars of the text; 0 of 2; 12 of 3 (chars 20..32)
    assert stats["length"] == {"min": 10, "mean": 13.3, "median": 10, "p95": 20, "max": 20}
    assert (stats["truncated_rows"], stats["truncated_tokens"], stats["dropped_rows"]) == (3, 2 + 12 + 2, 1)
    assert stats["tokens_per_epoch"] == 24
    assert [(p.line, p.code, p.severity) for p in problems] == [(n, "too-long", "warning") for n in (1, 2, 3)]
    assert problems[1].message == (
        "20 tokens (estimated), longer than max_seq_len=8: 12 tokens would be truncated, "
        "leaving nothing to train on, so the row would be dropped"
    )


def test_a_tokenizer_counts_exactly_and_a_row_its_template_rejects_is_an_error(tiny_tokenizer):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ m['content'] + eos_token }}{% endfor %}"
    )
    reply = {"role": "assistant", "content": "orange"}
    examples = [
        Example("c.jsonl", 1, {"messages": [{"role": "user", "content": "the fox?"}, reply]}),
        Example("c.jsonl", 2, {"messages": [{"role": "system", "content": "be brief"}, reply]}),
    ]
    stats, problems = token_stats("c.jsonl", examples, tokenizer, 512, "completion")
    expected = tokenizer.apply_chat_template(examples[0].data["messages"], tokenize=True, return_dict=True)
    assert stats["tokens"] == len(expected["input_ids"]) and stats["tokens_estimated"] is False
    assert stats["chat_template"] == "the model's"
    assert [(p.line, p.code, p.severity) for p in problems] == [(2, "render-failed", "error")]
    assert "no system role" in problems[0].message


def test_no_examples_no_statistics():
    assert token_stats("e.jsonl", [], None, 512, "completion") == ({}, [])


def test_histogram_bins_are_round_and_cover_every_row():
    bins = histogram([3, 17, 250, 999])
    assert bins[0]["from"] == 0 and bins[-1]["to"] >= 999
    assert {b["to"] - b["from"] + 1 for b in bins} == {100}
    assert sum(b["rows"] for b in bins) == 4
    assert histogram([7, 7, 7]) == [{"from": 7, "to": 7, "rows": 3}]
