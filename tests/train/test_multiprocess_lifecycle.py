"""A 2-process `ftkit run` (gloo, real processes) with checkpoints goes through the whole run lifecycle: the parent
records the resolved recipe and each checkpoint as rank 0 reports them (the workers never touch the registry);
every checkpoint is complete (both ranks' RNG state, the marker, no staging folder); a Ctrl-C to the parent stops
both ranks at the same step, rank 0 saves there and the run is recorded interrupted (exit 130); `ftkit resume`
continues it in 2 processes to the uninterrupted run's per-step losses.

Reference for the losses: the same recipe run without a stop, in 2 processes (the resumed run must continue it,
not a 1-process run: tests/train/test_multiprocess.py shows those agree too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.train.test_multiprocess import commit_messages, ftkit, losses, write_case

pytestmark = pytest.mark.slow

STEPS, EVERY = 8, 4
SETTINGS = ["--set", f"training.max_steps={STEPS}", "--set", f"training.save_every={EVERY}",
            "--set", "training.keep_checkpoints=3", "--set", "training.logging_steps=1"]  # fmt: skip
WAIT_S = 300  # a guard against a hung child, never an assertion about speed


def _registry(path: Path):
    from ftkit.registry.store import RunRegistry

    return RunRegistry.open(path, create=False)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir) -> dict:
    root = tmp_path_factory.mktemp("whole")
    recipe = write_case(root, tiny_model_dir, 4)
    done = ftkit("run", str(recipe), "--num-processes", "2", "--json", "--registry", str(root / "registry"),
                 *SETTINGS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    return {"root": root, "recipe": recipe, "payload": payload, "stderr": done.stderr}


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, uninterrupted) -> dict:
    """The same run, Ctrl-C (SIGINT) sent to the `ftkit run` parent once rank 0 reported its first step."""
    root = tmp_path_factory.mktemp("stopped")
    registry = root / "registry"
    env = {**os.environ, "FTKIT_DEBUG": "0", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ftkit", "run", str(uninterrupted["recipe"]), "--num-processes", "2", "--json",
         "--registry", str(registry), "--set", f"output={root / 'outputs'}", *SETTINGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen, deadline = "", time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen += line
        if line.startswith("step ") or (not line and process.poll() is not None):
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=WAIT_S)
    return {"root": root, "registry": registry, "code": process.returncode, "stdout": stdout,
            "stderr": seen + stderr}  # fmt: skip


def test_parent_records_resolved_recipe_and_checkpoints_as_rank_0_reports_them(uninterrupted):
    root, payload = uninterrupted["root"], uninterrupted["payload"]
    run_id = payload["run_id"]
    mine = [m.removeprefix("run RUN two-processes: ") for m in commit_messages(root / "registry", run_id)]
    # The parent's commits, in order: running, the resolved recipe, one per checkpoint (steps 4 and 8), final;
    # nothing else (the workers commit nothing).
    assert mine[0].endswith(", running"), mine
    assert mine[1:4] == ["updated config_hash, resolved", *["updated last_checkpoint"] * 2], mine
    assert mine[4].endswith("succeeded, eval.loss=" + mine[4].rsplit("=", 1)[-1]) and len(mine) == 5, mine
    record = _registry(root / "registry").load_run(run_id)
    output = Path(payload["output_dir"])
    assert record["run"]["last_checkpoint"] == {
        "step": 8,
        "path": str(output / "checkpoints" / "checkpoint-8"),
    }
    assert record["run"]["process"]["pid"] != 0
    assert record["resolved"]["distributed"]["num_processes"] == 2
    assert len(record["run"]["config_hash"]) == 64
    # Checkpoint events replayed on the parent's terminal, each one complete on disk.
    assert (
        "checkpoint at step 4" in uninterrupted["stderr"]
        and "checkpoint at step 8" in uninterrupted["stderr"]
    )


def test_two_process_checkpoints_are_complete_with_every_ranks_state(uninterrupted):
    folder = Path(uninterrupted["payload"]["output_dir"]) / "checkpoints"
    folders = sorted(path.name for path in folder.iterdir() if path.is_dir())
    assert folders == ["checkpoint-4", "checkpoint-8"]  # no staging folder left
    for step in (4, 8):
        checkpoint = folder / f"checkpoint-{step}"
        names = {path.name for path in checkpoint.iterdir()}
        # Each rank's RNG state (rank 1 writes its own), the optimizer, the trainer state, the marker last.
        assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", "trainer_state.json",
                "ftkit-checkpoint.json", "adapter_model.safetensors"} <= names, names  # fmt: skip
        marker = json.loads((checkpoint / "ftkit-checkpoint.json").read_text())
        assert marker["step"] == step
        assert sorted(marker["files"]) == sorted(names - {"ftkit-checkpoint.json"})
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        assert state["global_step"] == step


def test_ctrl_c_to_the_parent_stops_both_ranks_at_one_step_saves_and_records_interrupted(interrupted):
    assert interrupted["code"] == 130, interrupted["stderr"]
    assert "Traceback" not in interrupted["stderr"]
    payload = json.loads(interrupted["stdout"])
    assert payload["status"] == "interrupted"
    run = _registry(interrupted["registry"]).load_run(payload["run_id"])
    assert run["run"]["status"] == "interrupted"
    stopped = max(row["step"] for row in run["history"] if "loss" in row)
    assert 1 <= stopped < STEPS
    # Rank 0 saved a checkpoint at the step the ranks stopped at, holding both ranks' RNG state (both were there).
    checkpoint = Path(payload["output_dir"]) / "checkpoints" / f"checkpoint-{stopped}"
    assert (checkpoint / "ftkit-checkpoint.json").is_file(), sorted(checkpoint.parent.iterdir())
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == stopped
    assert run["run"]["last_checkpoint"]["step"] == stopped  # recorded by the parent as it came
    assert f"interrupted at step {stopped}" in interrupted["stderr"]
    # Each worker ended as interrupted (exit 130), none failed.
    launch = list(Path(tempfile.gettempdir()).glob(f"ftkit-launch-{payload['run_id']}-*"))
    statuses = [json.loads((launch[0] / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [status["exit_code"] for status in statuses] == [130, 130], statuses
    fsck = subprocess.run(
        ["git", "-C", str(interrupted["registry"]), "fsck", "--strict"], capture_output=True
    )
    assert fsck.returncode == 0, fsck.stderr


def test_resume_of_an_interrupted_two_process_run_continues_it_exactly(interrupted, uninterrupted):
    payload = json.loads(interrupted["stdout"])
    run_id, registry = payload["run_id"], interrupted["registry"]
    resumed = ftkit("resume", run_id, "--json", "--registry", str(registry))
    assert resumed.returncode == 0, resumed.stderr
    assert "starting 2 processes" in resumed.stderr
    document = json.loads(resumed.stdout)
    assert document["status"] == "succeeded" and document["run_id"] == run_id
    measured = dict(losses(registry, run_id))
    expected = dict(losses(uninterrupted["root"] / "registry", uninterrupted["payload"]["run_id"]))
    assert sorted(measured) == list(range(1, STEPS + 1))
    for step, loss in expected.items():
        assert measured[step] == pytest.approx(loss, abs=1e-4), step
    run = _registry(registry).load_run(run_id)
    assert run["run"]["status"] == "succeeded"
    assert run["run"]["last_checkpoint"]["step"] == STEPS
    assert run["metrics"]["train.num_processes"] == 2
    assert run["metrics"]["eval.loss"] == pytest.approx(
        uninterrupted["payload"]["metrics"]["eval.loss"], abs=1e-4
    )
