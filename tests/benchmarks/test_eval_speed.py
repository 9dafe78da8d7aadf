"""benchmarks/eval_speed.py: the rows and paired ratios against figures worked out by hand, the correctness rows'
targets, and one real repetition on the tiny model whose three loss sides agree with a loss computed here
(no timing is asserted)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
from benchmarks.eval_speed import eval_rows, measure


def _rep(loss: tuple[float, float, float], gen: tuple[float, float, float], diff: float, same: bool) -> dict:
    sides = ("ftkit", "one_by_one", "plain")
    return {
        "loss": {**{s: {"rows_per_s": r} for s, r in zip(sides, loss, strict=True)}, "loss_diff": diff},
        "generation": {
            **{s: {"rows_per_s": r} for s, r in zip(sides, gen, strict=True)},
            "same_answers": same,
        },
    }


def test_rows_pair_the_sides_of_each_repetition_per_workload():
    reps = [
        _rep((40.0, 10.0, 40.0), (4.0, 1.0, 5.0), 1e-6, True),
        {"error": "child failed"},  # left out of every row
        _rep((30.0, 10.0, 25.0), (3.0, 1.5, 3.0), 3e-6, True),
        _rep((36.0, 12.0, 30.0), (6.0, 1.5, 4.0), 2e-6, True),
    ]
    rows = {row.key: row for row in eval_rows(reps, "cmd", {"loss": "l", "generation": "g"}) if row.key}
    assert (
        rows["loss_ratio_loop"].stat.values == [4.0, 3.0, 3.0] and rows["loss_ratio_loop"].stat.median == 3.0
    )
    assert rows["loss_ratio_plain"].stat.values == [1.0, 1.2, 1.2]
    assert rows["generation_ratio_loop"].stat.values == [4.0, 2.0, 4.0]
    assert rows["generation_ratio_plain"].stat.values == [0.8, 1.0, 1.5]
    assert rows["generation_ratio_plain"].stat.min == 0.8 and rows["generation_ratio_plain"].stat.max == 1.5
    assert rows["loss_diff"].stat.max == 3e-6 and rows["loss_diff"].status == "met"
    assert rows["same_answers"].stat.values == [1.0, 1.0, 1.0] and rows["same_answers"].status == "met"


def test_a_loss_disagreement_or_different_answers_miss_their_targets():
    reps = [
        _rep((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0.02, True),
        _rep((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0, False),
    ]
    rows = {row.key: row for row in eval_rows(reps, "cmd", {"loss": "l", "generation": "g"}) if row.key}
    assert rows["loss_diff"].status == "missed"
    assert rows["same_answers"].status == "missed" and rows["same_answers"].stat.values == [1.0, 0.0]


def _reference_loss(model_dir, conversations) -> float:
    """Mean cross-entropy over the assistant reply and its end-of-turn token, each conversation alone and
    unbatched; the reply is the chat-templated text after the generation prompt (independent of ftkit's masks)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total, count = 0.0, 0
    for messages in conversations:
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False).rstrip()
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids  # the reply's tokens follow the prompt's
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        targets = torch.tensor(ids[len(prompt_ids) :])
        total += torch.nn.functional.cross_entropy(
            logits[len(prompt_ids) - 1 : -1], targets, reduction="sum"
        ).item()
        count += len(targets)
    return total / count


@pytest.mark.usefixtures("one_torch_thread")
def test_one_repetition_on_the_tiny_model_times_every_side_and_the_losses_agree(tiny_model_dir, tmp_path):
    conversations = [
        [
            {"role": "user", "content": f"what is the color of the {a}"},
            {"role": "assistant", "content": f"the {a} is {c}"},
        ]
        for a, c in (("cat", "grey"), ("owl", "brown"), ("fox", "red and long"))
    ]
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in conversations))
    args = argparse.Namespace(model=str(tiny_model_dir), data=str(data), batch_size=2, generate=3, max_new_tokens=5,
                              max_seq_len=256, order="plain,ftkit,one_by_one")  # fmt: skip
    record = measure(args)
    for workload in ("loss", "generation"):
        for side in ("ftkit", "one_by_one", "plain"):
            assert record[workload][side]["rows_per_s"] > 0 and record[workload][side]["seconds"] > 0
    assert record["generation"]["same_answers"] is True
    assert set(record["generation"]["ftkit"]["scores"]) == {"exact_match", "contains"}
    reference = _reference_loss(tiny_model_dir, conversations)
    for side in ("ftkit", "one_by_one", "plain"):
        assert math.isclose(record["loss"][side]["loss"], reference, rel_tol=1e-4), side
    assert record["loss"]["loss_diff"] < 1e-4
