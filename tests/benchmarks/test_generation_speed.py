"""benchmarks/generation_speed.py: the side rotation, the prompts, the paired ratios against figures worked out by
hand, and one real repetition on the tiny model (its answers agree across sides; no timing is asserted)."""

from __future__ import annotations

import argparse
import json

import pytest
from benchmarks.generation_speed import chat_prompts, measure, side_orders, speed_rows
from benchmarks.presets import PRESETS


def test_each_side_takes_each_position_in_turn():
    orders = side_orders(5)
    assert orders[:3] == [("ftkit", "one_by_one", "plain"), ("one_by_one", "plain", "ftkit"),
                          ("plain", "ftkit", "one_by_one")]  # fmt: skip
    assert orders[3] == orders[0] and len(orders) == 5
    assert PRESETS["small"].reps >= 5  # a median and a spread


def test_prompts_are_distinct_user_questions_cut_before_the_first_reply():
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": "more"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "other"}]},  # a copy
        {"messages": [{"role": "assistant", "content": "starts with the bot"}]},  # no question
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a"}]},
    ]  # fmt: skip
    assert chat_prompts(rows, 5) == [
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
    ]
    assert chat_prompts(rows, 1) == [[{"role": "user", "content": "hi"}]]


def test_ratios_pair_the_sides_of_each_repetition():
    reps = [
        {"ftkit": {"rows_per_s": 8.0}, "one_by_one": {"rows_per_s": 2.0}, "plain": {"rows_per_s": 8.0}},
        {"ftkit": {"rows_per_s": 9.0}, "one_by_one": {"rows_per_s": 3.0}, "plain": {"rows_per_s": 10.0}},
        {"error": "child failed"},  # a failed repetition is left out of every pair
        {"ftkit": {"rows_per_s": 6.0}, "one_by_one": {"rows_per_s": 1.5}, "plain": {"rows_per_s": 5.0}},
    ]
    rows = {row.key or row.name: row for row in speed_rows(reps, "cmd", "what")}
    assert rows["ratio_loop"].stat.values == [4.0, 3.0, 4.0] and rows["ratio_loop"].stat.median == 4.0
    assert rows["ratio_plain"].stat.values == [1.0, 0.9, 1.2] and rows["ratio_plain"].stat.median == 1.0
    ftkit = rows["ftkit generate_batch (batched) (what)"].stat
    assert (ftkit.median, ftkit.min, ftkit.max, ftkit.n) == (8.0, 6.0, 9.0, 3)


@pytest.mark.usefixtures("one_torch_thread")
def test_one_repetition_on_the_tiny_model_times_every_side_and_agrees(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([[{"role": "user", "content": f"what is the color of the {a}"}]
                                   for a in ("cat", "owl", "fox")]))  # fmt: skip
    args = argparse.Namespace(model=str(tiny_model_dir), prompts=str(prompts), batch_size=2, max_new_tokens=6,
                              order="plain,ftkit,one_by_one")  # fmt: skip
    record = measure(args)
    for side in ("ftkit", "one_by_one", "plain"):
        assert record[side]["rows_per_s"] > 0 and record[side]["seconds"] > 0
    assert record["same_answers"] is True
