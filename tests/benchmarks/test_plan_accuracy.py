"""benchmarks/plan_accuracy.py's arithmetic: pairing each repetition's plan with its run, the ratios and the
issue's targets, against figures worked out by hand. No training and no timing here."""

from __future__ import annotations

from benchmarks.plan_accuracy import accuracy_rows, repetition_values
from benchmarks.presets import PRESETS

MB = 2**20


def _rep(lora: tuple, full: tuple, failed_run: str | None = None) -> dict:
    """A repetition record: per method (predicted MB, analytic MB, run seconds predicted, peak RSS MB, train s)."""
    plan, runs = {}, {}
    for method, (predicted, analytic, seconds, rss, train_s) in (("lora", lora), ("full", full)):
        plan[method] = {
            "predicted_bytes": predicted * MB,
            "analytic_bytes": analytic * MB,
            "run_seconds": seconds,
        }
        ok = method != failed_run
        runs[method] = {"ok": ok, "peak_rss_mb": rss, "train_s": train_s}
    return {"plan": plan, "runs": runs}


REPS = [
    _rep(lora=(2000, 1800, 30.0, 2000, 40.0), full=(3600, 4000, 50.0, 3000, 50.0)),
    _rep(lora=(2200, 1800, 33.0, 2000, 30.0), full=(3600, 4000, 60.0, 3600, 48.0)),
    _rep(lora=(2100, 1800, 36.0, 2100, 30.0), full=(3900, 4000, 45.0, 3000, 50.0), failed_run="full"),
]


def test_a_failed_run_leaves_its_repetition_out_of_the_pairs():
    values = repetition_values(REPS, "full")
    assert values["measured_mb"] == [3000, 3600, None]
    assert values["predicted_mb"] == [3600, 3600, 3900]
    assert values["measured_s"] == [50.0, 48.0, None]


def test_ratios_pair_plan_and_run_of_each_repetition_and_judge_the_median():
    rows = {row.key or row.name: row for row in accuracy_rows(REPS, "cmd", "batch 4")}
    lora_memory = rows["memory_lora"].stat  # 2000/2000, 2200/2000, 2100/2100
    assert lora_memory.values == [1.0, 1.1, 1.0] and lora_memory.median == 1.0
    assert rows["memory_lora"].status == "met" and rows["memory_lora"].target == "0.75–1.25"
    lora_time = rows["time_lora"].stat  # 30/40, 33/30, 36/30
    assert lora_time.values == [0.75, 1.1, 1.2] and lora_time.median == 1.1
    assert rows["time_lora"].status == "met"
    full_memory = rows["memory_full"].stat  # 3600/3000, 3600/3600; the failed run is left out
    assert full_memory.values == [1.2, 1.0] and full_memory.n == 2
    full_time = rows["time_full"].stat  # 50/50, 60/48
    assert full_time.values == [1.0, 1.25] and full_time.median == 1.125
    analytic = rows["full memory analytic estimate / measured (the fallback where no probe runs)"].stat
    assert analytic.values == [4000 / 3000, 4000 / 3600] and rows["memory_full"].status == "met"


def test_a_median_outside_the_target_is_missed():
    slow = [_rep(lora=(2000, 1800, 10.0, 2000, 40.0), full=(6000, 4000, 50.0, 3000, 50.0))]
    rows = {row.key: row for row in accuracy_rows(slow, "cmd", "batch 4") if row.key}
    assert rows["time_lora"].status == "missed"  # 10 s predicted for 40 s: 0.25
    assert rows["memory_full"].status == "missed"  # 6000 MB predicted for 3000 MB: 2.0
    assert rows["memory_lora"].status == "met" and rows["time_full"].status == "met"


def test_every_preset_sizes_the_plan_benchmark():
    assert PRESETS["small"].plan.batch_size == 4 and PRESETS["small"].plan.max_seq_len == 128
    assert PRESETS["small"].reps >= 5  # the issue asks for a median and a spread: at least 5 alternated reps
    for preset in PRESETS.values():
        assert preset.plan.steps >= 1 and preset.plan_probe_steps >= 1
