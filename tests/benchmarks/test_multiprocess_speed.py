"""benchmarks/multiprocess_speed.py: the alternation, tokens/s read from `ftkit run --json` and the paired ratio,
against figures worked out by hand (no timing is asserted)."""

from __future__ import annotations

from benchmarks.multiprocess_speed import side_orders, speed_rows, tokens_per_second
from benchmarks.presets import PRESETS
from benchmarks.report import ORDER, SUMMARY


def test_sides_alternate_which_goes_first():
    orders = side_orders(5)
    assert [tuple(side for side, _ in order) for order in orders] == [("one", "two"), ("two", "one")] * 2 + [
        ("one", "two")
    ]
    assert dict(orders[0]) == {"one": 1, "two": 2}
    assert PRESETS["small"].reps >= 5  # a median and a spread


def test_tokens_per_second_is_global_tokens_over_the_train_loop():
    payload = {"status": "succeeded", "metrics": {"train.tokens": 3000, "train.runtime_s": 12.0}}
    assert tokens_per_second(payload) == 250.0
    assert (
        tokens_per_second({"status": "failed", "metrics": {"train.tokens": 3000, "train.runtime_s": 1}})
        is None
    )
    assert tokens_per_second(None) is None


def test_the_ratio_pairs_each_repetition_and_may_be_below_one():
    reps = [{"one": 200.0, "two": 150.0}, {"one": 100.0, "two": 90.0}, {"one": 300.0, "two": None}]
    rows = {row.key or row.name: row for row in speed_rows(reps, "cmd", "what")}
    ratio = rows["ratio"].stat
    assert ratio.values == [0.75, 0.9] and ratio.median == 0.825 and ratio.min == 0.75 and ratio.max == 0.9
    assert "multiprocess_speed" in ORDER
    assert any(name == "multiprocess_speed" and keys == ("ratio",) for name, keys, _ in SUMMARY)
