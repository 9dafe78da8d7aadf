"""benchmarks/tracking_overhead.py: step times and paired ratios worked out by hand, registered like the other
benchmarks (small and smoke sizes), and the probe times a real tiny run's tracking hooks (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from benchmarks.__main__ import NEEDS_MODEL
from benchmarks.presets import PRESETS
from benchmarks.tracking_overhead import NAME, TRACKERS, paired_ratios, step_times, tracker_rows

from benchmarks import report
from ftkit.registry.store import RunRegistry
from tests.conftest import write_recipe


def test_step_times_leave_out_step_one_and_eval_rows():
    history = [
        {"step": 1, "time_s": 5.0, "loss": 2.0},  # the first, slow step
        {"step": 2, "time_s": 6.0, "loss": 1.9},
        {"step": 2, "time_s": 9.0, "eval_loss": 1.8},  # an eval row: not a step
        {"step": 3, "time_s": 8.0, "loss": 1.8},
        {"step": 4, "time_s": 9.5, "loss": 1.7},
    ]
    # steps 1 -> 4: 4.5 s over 3 steps; single steps 1.0, 2.0, 1.5
    assert step_times(history) == {"mean_s": 1.5, "median_s": 1.5}
    assert step_times(history[:1]) == {"mean_s": None, "median_s": None}


def test_ratios_pair_each_tracker_run_with_the_same_repetition_without():
    runs = {
        "none": [{"mean_s": 2.0}, {"mean_s": 4.0}, {"mean_s": 1.0}],
        "mlflow": [{"mean_s": 2.02}, {"mean_s": 4.4}, {"error": "boom"}],  # a failed run is left out
        "tensorboard": [{"mean_s": 2.0}, {"mean_s": 4.0}, {"mean_s": 1.0}],
        "wandb": [{"mean_s": 3.0}, {"mean_s": 4.0}, {"mean_s": 0.9}],
    }
    mlflow = paired_ratios(runs, "mlflow", "mean_s")
    assert mlflow.n == 2 and mlflow.values == pytest.approx([1.01, 1.1])
    wandb = paired_ratios(runs, "wandb", "mean_s")
    assert (wandb.median, wandb.min, wandb.max) == pytest.approx((1.0, 0.9, 1.5))
    rows = {row.key: row for row in tracker_rows(runs, "cmd", "what")}
    assert rows["ratio_mlflow"].status == "missed"  # median of 1.01 and 1.10: 1.055
    assert rows["ratio_wandb"].status == "met" and rows["ratio_tensorboard"].status == "met"
    assert rows["ratio_tensorboard"].target == "<= 1.02"
    runs["wandb"][0]["mean_s"] = 2.1  # ratios 1.05, 1.05, 0.9: median 1.05
    runs["wandb"][1]["mean_s"] = 4.2
    assert {row.key: row for row in tracker_rows(runs, "cmd", "what")}["ratio_wandb"].status == "missed"


def test_registered_like_the_others():
    assert NAME in report.ORDER and NAME in NEEDS_MODEL
    quoted = {key for name, keys, _ in report.SUMMARY if name == NAME for key in keys}
    assert quoted == {f"ratio_{tracker}" for tracker in TRACKERS}
    assert PRESETS["small"].reps >= 5 and PRESETS["small"].tracking.steps >= 10
    assert PRESETS["smoke"].reps == 1 and PRESETS["smoke"].tracking.steps == 2


@pytest.mark.slow
def test_the_probe_times_the_tracking_hooks_of_a_real_run(tmp_path, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"],
                          extra="tracking: [tensorboard]\n")  # fmt: skip
    text = recipe.read_text().replace("max_steps: 12", "max_steps: 3")
    recipe.write_text(text.replace("  seed: 42\n", "  seed: 42\n  logging_steps: 1\n"))
    probe, registry = tmp_path / "probe.json", tmp_path / "reg"
    env = {**os.environ, "FTKIT_BENCH_PROBE": str(probe), "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "benchmarks/tracking_probe.py", "run", str(recipe), "--json", "--registry", str(registry)],
        capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.dirname(report.__file__)),
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    times = json.loads(probe.read_text())
    run_id = json.loads(child.stdout)["run_id"]
    history = RunRegistry.open(registry, create=False).load_run(run_id)["history"]
    assert times["trackers"] == ["tensorboard"]
    assert times["log_rows"] == len(history) >= 3  # every history row went through log_row once
    assert times["tracker_logs"] == times["log_rows"]  # and reached the tracker on the background thread
    assert times["start_s"] > 0 and times["finish_s"] > 0
    assert list((tmp_path / "outputs" / run_id / "tensorboard").glob("events.out.tfevents.*"))
