"""benchmarks/preference_speed.py: the pairing, ratio and loss-difference math against figures worked out by hand,
the data sample it writes, its registration (small and smoke sizes), and one real repetition on the tiny model in
which `ftkit run` and the independent plain TRL script (benchmarks/plain_dpo.py) log the same first losses."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from benchmarks.__main__ import NEEDS_MODEL
from benchmarks.context import Context
from benchmarks.preference_speed import (
    NAME,
    checks,
    loss_difference,
    paired,
    preference_data,
    recipe,
    result_rows,
    run_ftkit_side,
    run_plain_side,
    valid_pair,
)
from benchmarks.presets import PRESETS, TrainSize

from benchmarks import report
from tests.conftest import write_jsonl


def losses(*values: float) -> list[dict]:
    return [{"step": step, "loss": value} for step, value in enumerate(values, start=1)]


def test_loss_difference_is_the_largest_of_the_first_three_steps_matched_by_step():
    ftkit = losses(0.693147, 0.69, 0.68, 0.5)
    plain = losses(0.693147, 0.69005, 0.67998, 0.9)  # step 4 differs by 0.4 but is not among the first 3
    assert loss_difference(ftkit, plain) == pytest.approx(5e-5)
    # a step logged by one side only is skipped: steps 1, 3, 4 are shared; the first 3 of them count
    assert loss_difference([ftkit[0], ftkit[2], ftkit[3]], plain) == pytest.approx(0.4)
    assert loss_difference(ftkit, plain, steps=1) == 0.0
    assert loss_difference(ftkit, []) is None


def runs_of(ftkit: list, plain: list, sft: list) -> dict[str, list[dict]]:
    def side(name: str, values: list) -> list[dict]:
        return [
            value if "error" in value else {"tag": f"{name}-{i}", **value} for i, value in enumerate(values)
        ]

    return {"ftkit": side("ftkit", ftkit), "plain": side("plain", plain), "sft": side("sft", sft)}


RUNS = runs_of(
    ftkit=[
        {"tokens_per_sec": 100.0, "peak_rss_mb": 1100.0, "losses": losses(0.693147, 0.60, 0.50)},
        {"tokens_per_sec": 90.0, "peak_rss_mb": 1150.0, "losses": losses(0.693147, 0.61, 0.52)},
        {"error": "boom", "tag": "ftkit-2"},
    ],
    plain=[
        {"tokens_per_sec": 80.0, "peak_rss_mb": 1150.0, "losses": losses(0.693147, 0.60002, 0.50001)},
        {"tokens_per_sec": 100.0, "peak_rss_mb": 1250.0, "losses": losses(0.693147, 0.61, 0.52003)},
        {"tokens_per_sec": 50.0, "peak_rss_mb": 1000.0, "losses": losses(0.7, 0.7, 0.7)},
    ],
    sft=[{"peak_rss_mb": 1000.0}, {"peak_rss_mb": 1000.0}, {"peak_rss_mb": 1000.0}],
)


def test_ratios_pair_each_repetition_and_leave_a_failed_one_out():
    # 100/80 and 90/100; the failed third repetition is left out
    ratio = paired(RUNS, "tokens_per_sec", "ftkit", "plain")
    assert ratio.values == pytest.approx([1.25, 0.9])
    assert (ratio.median, ratio.min, ratio.max) == pytest.approx((1.075, 0.9, 1.25))
    rss = paired(RUNS, "peak_rss_mb", "ftkit", "sft")
    assert rss.values == pytest.approx([1.1, 1.15])


def test_rows_and_their_targets():
    rows = {row.key: row for row in result_rows(RUNS, "cmd", "what")}
    assert rows["ratio"].status == "met" and rows["ratio"].target == ">= 1.00"  # median 1.075
    loss = rows["loss_diff"]
    assert loss.stat.values == pytest.approx([2e-5, 3e-5])
    assert loss.status == "met"  # the max, 3e-5, is what is checked
    assert rows["rss_ratio"].stat.median == pytest.approx(1.125) and rows["rss_ratio"].status == "met"
    assert rows["rss_vs_plain"].stat.values == pytest.approx([1100 / 1150, 1150 / 1250])
    slower = runs_of(
        ftkit=[{"tokens_per_sec": 95.0, "peak_rss_mb": 1200.0, "losses": losses(0.69, 0.6002)}],
        plain=[{"tokens_per_sec": 100.0, "peak_rss_mb": 1200.0, "losses": losses(0.69, 0.6)}],
        sft=[{"peak_rss_mb": 1000.0}],
    )
    rows = {row.key: row for row in result_rows(slower, "cmd", "what")}
    assert rows["ratio"].status == "missed"  # 0.95
    assert rows["loss_diff"].stat.max == pytest.approx(2e-4) and rows["loss_diff"].status == "missed"
    assert rows["rss_ratio"].stat.median == pytest.approx(1.2) and rows["rss_ratio"].status == "missed"
    assert "rss_ratio_same_sequences" not in rows  # no SFT-pairs side ran


def test_the_same_sequences_memory_ratio_pairs_dpo_with_sft_on_both_answers():
    runs = {
        **RUNS,
        "sft_pairs": [
            {"tag": f"sft_pairs-{i}", "peak_rss_mb": mb} for i, mb in enumerate([1000.0, 1100.0, 900.0])
        ],
    }
    rows = {row.key: row for row in result_rows(runs, "cmd", "what")}
    same = rows["rss_ratio_same_sequences"]  # 1100/1000 and 1150/1100; ftkit's third repetition failed
    assert same.stat.values == pytest.approx([1.1, 1150 / 1100])
    assert same.status == "met" and same.target == "<= 1.15"
    assert rows["rss_sft_pairs"].stat.median == pytest.approx(1000.0)


def test_checks_refuse_skipped_rows_and_settings_other_than_stated():
    runs = runs_of(
        ftkit=[{"tokens": 500, "skipped_rows": 1, "load_average": [0.1],
                "settings": {"precision": "fp32", "gradient_checkpointing": False}}],
        plain=[{"tokens": 480, "load_average": [0.1]}],
        sft=[{"tokens": 300, "load_average": [0.1], "settings": {"precision": "bf16", "gradient_checkpointing": False}}],
    )  # fmt: skip
    errors, notes = checks(runs)
    assert any("skipped rows" in error and "ftkit-0" in error for error in errors)
    assert any("sft-0" in error and "fp32" in error for error in errors)
    assert any("token counts differ" in note for note in notes)  # 500 vs 480; SFT's count is not compared


def test_the_data_sample_keeps_valid_pairs_only(tmp_path):
    source = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": 0, "prompt": "p0", "chosen": "c0", "rejected": "r0", "agreement": 3},
        {"id": 1, "prompt": "p1", "chosen": True, "rejected": "r1"},  # a bool answer (PandaLM has 6)
        {"id": 2, "prompt": "p2", "chosen": "c2", "rejected": ""},
        {"id": 3, "prompt": "p3", "chosen": " same ", "rejected": "same"},
        {"id": 4, "prompt": "p4", "chosen": "c4", "rejected": "r4"},
        {"id": 5, "prompt": "p5", "chosen": "c5", "rejected": "r5"},
    ])  # fmt: skip
    assert valid_pair({"prompt": "p", "chosen": "c", "rejected": "r"}) and not valid_pair({"prompt": "p"})
    files = preference_data(2, 1, tmp_path, source)
    read = {
        name: [json.loads(line) for line in path.read_text().splitlines()] for name, path in files.items()
    }
    kept = read["eval"] + read["train"]
    assert sorted(pair["prompt"] for pair in kept) == ["p0", "p4", "p5"]  # the three valid pairs, shuffled
    assert all(set(pair) == {"prompt", "chosen", "rejected"} for pair in kept)
    assert read["sft_train"] == [{"prompt": p["prompt"], "completion": p["chosen"]} for p in read["train"]]
    assert read["sft_pairs_train"] == [
        {"prompt": p["prompt"], "completion": p[answer]}
        for p in read["train"]
        for answer in ("chosen", "rejected")
    ]
    assert (
        preference_data(2, 1, tmp_path / "again", source)["train"].read_text() == files["train"].read_text()
    )
    with pytest.raises(ValueError, match="3 valid pairs"):
        preference_data(3, 1, tmp_path, source)


def test_registered_like_the_others():
    assert NAME in report.ORDER and NAME in NEEDS_MODEL
    quoted = {key for name, keys, _ in report.SUMMARY if name == NAME for key in keys}
    assert quoted == {"ratio", "loss_diff", "rss_ratio", "rss_ratio_same_sequences"}
    assert PRESETS["small"].reps >= 5 and PRESETS["small"].preference.steps >= 10
    assert PRESETS["smoke"].reps == 1 and PRESETS["smoke"].preference.steps == 2


@pytest.mark.slow
def test_ftkit_and_plain_trl_log_the_same_first_losses_on_the_tiny_model(
    tmp_path, tiny_model_dir, monkeypatch
):
    from benchmarks import preference_speed

    monkeypatch.setattr(preference_speed, "LEARNING_RATE", 1e-2)  # both sides: the loss moves within 3 steps
    source = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": f"the cat is {colour}. what colour is it?", "chosen": f" it is {colour}",
         "rejected": f" it is {other}"}
        for colour, other in [("red", "blue"), ("green", "white"), ("black", "red"), ("blue", "green")] * 3
    ])  # fmt: skip
    preset = replace(PRESETS["smoke"], preference=TrainSize(batch_size=2, steps=3, max_seq_len=64))
    ctx = Context(preset, tmp_path / "work", model_dir=tiny_model_dir)
    files = preference_data(6, 2, ctx.workdir, source)
    ftkit = run_ftkit_side(ctx, recipe(ctx, files, "preference"), "ftkit-0")
    plain = run_plain_side(ctx, files, "plain-0")
    assert "error" not in ftkit and "error" not in plain, (ftkit.get("error"), plain.get("error"))
    assert [row["step"] for row in ftkit["losses"]] == [row["step"] for row in plain["losses"]] == [1, 2, 3]
    assert ftkit["losses"][0]["loss"] == pytest.approx(0.693147, abs=1e-5)  # policy = reference at step 1
    assert abs(plain["losses"][2]["loss"] - 0.693147) > 1e-3  # the comparison is not of two untrained models
    assert loss_difference(ftkit["losses"], plain["losses"]) <= 1e-4
    assert ftkit["tokens"] == plain["tokens"] and ftkit["trainable_params"] == plain["trainable_params"]
    assert ftkit["settings"]["precision"] == "fp32" and ftkit["settings"]["gradient_checkpointing"] is False
