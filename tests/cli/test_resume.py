"""`ftkit resume`: a real `ftkit run` process stopped (Ctrl-C, kill -9 mid-training, kill -9 while a checkpoint is
being written) and resumed reaches, step for step, the losses of the same recipe run without a stop; a resume
that would change the training, or has no complete checkpoint, is refused with exit 2 and the registry untouched.

The stops happen inside the process at an exact step: a small wrapper (FAULTS below, test-only) patches ftkit's
progress callback or checkpoint writer to signal its own process, then runs ftkit's real entry point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import chat_rows, write_jsonl, write_recipe

STEPS = 20  # 64 rows, batch 8: 8 steps an epoch, so the stops fall mid-epoch and across an epoch boundary

FAULTS = """
import os, signal, sys
point, step = sys.argv[1], int(sys.argv[2])
from ftkit.train import callbacks, checkpoints
if point in ("sigint", "kill", "sigterm"):
    on_log = callbacks.ProgressTracker.on_log
    signum = {"sigint": signal.SIGINT, "kill": signal.SIGKILL, "sigterm": signal.SIGTERM}[point]
    def stop(self, args, state, control, logs=None, **kwargs):
        on_log(self, args, state, control, logs=logs, **kwargs)
        if state.global_step == step and logs and "loss" in logs:
            if point == "sigterm":  # what the registry shows while it runs: its heartbeat file
                registry = sys.argv[sys.argv.index("--registry") + 1]
                beats = os.path.join(registry, ".git", "ftkit-heartbeats")
                print("heartbeats:", sorted(os.listdir(beats)) if os.path.isdir(beats) else [], file=sys.stderr)
            os.kill(os.getpid(), signum)
    callbacks.ProgressTracker.on_log = stop
elif point == "kill-in-checkpoint":
    fsync_tree = checkpoints._fsync_tree
    def stop(folder):  # the Trainer has written the files into the staging folder; no marker, no rename yet
        if folder.name == f"checkpoint-{step}":
            os.kill(os.getpid(), signal.SIGKILL)
        fsync_tree(folder)
    checkpoints._fsync_tree = stop
from ftkit.cli.app import main
sys.argv = ["ftkit", *sys.argv[3:]]
main()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def ftkit(*args: str, fault: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    """A real ftkit process (with a stop at `fault` = (point, step) when given)."""
    prefix = ["-c", FAULTS, fault[0], str(fault[1])] if fault else ["-m", "ftkit"]
    return subprocess.run(
        [sys.executable, *prefix, *args], capture_output=True, text=True, env=_env(), timeout=300
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir) -> dict:
    """The recipe (checkpoints every 4 steps, 20 steps over 3 epochs) and its run without a stop."""
    root = tmp_path_factory.mktemp("resume")
    train = write_jsonl(root / "data" / "train.jsonl", chat_rows(64, seed=1))
    evaluation = write_jsonl(root / "data" / "eval.jsonl", chat_rows(16, seed=2))
    recipe = write_recipe(root / "recipe.yaml", tiny_model_dir, train, evaluation, extra="")
    text = (
        recipe.read_text().replace("max_steps: 12", f"max_steps: {STEPS}").replace("epochs: 1", "epochs: 3")
    )
    recipe.write_text(text.replace("  seed: 42\n", "  seed: 42\n  save_every: 4\n  keep_checkpoints: 2\n"))
    done = ftkit("run", str(recipe), "--json", "--registry", str(root / "reference-registry"))
    assert done.returncode == 0, done.stderr
    reference = json.loads(done.stdout)
    registry = _registry(root / "reference-registry")
    return {
        "recipe": recipe,
        "reference": reference,
        "history": registry.load_run(reference["run_id"])["history"],
    }


def _registry(path: Path):
    from ftkit.registry.store import RunRegistry

    return RunRegistry.open(path, create=False)


def _losses(history: list[dict]) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in history if "loss" in row}


def _interrupted(
    tmp_path: Path, setup: dict, fault: tuple[str, int]
) -> tuple[Path, str, subprocess.CompletedProcess]:
    registry = tmp_path / "registry"
    stopped = ftkit(
        "run", str(setup["recipe"]), "--registry", str(registry), "--set", f"output={tmp_path / 'out'}",
        fault=fault,
    )  # fmt: skip
    runs = _registry(registry).summaries()
    assert len(runs) == 1, stopped.stderr
    return registry, runs[0]["id"], stopped


def _assert_continues_reference(
    registry: Path, run_id: str, setup: dict, resumed: subprocess.CompletedProcess
):
    assert resumed.returncode == 0, resumed.stderr
    document = json.loads(resumed.stdout)
    assert document["run_id"] == run_id and document["status"] == "succeeded"
    loaded = _registry(registry).load_run(run_id)
    assert loaded["run"]["status"] == "succeeded"
    losses, expected = _losses(loaded["history"]), _losses(setup["history"])
    assert sorted(losses) == list(range(1, STEPS + 1))  # continuous: the rows before the checkpoint are kept
    for (
        step,
        loss,
    ) in expected.items():  # measured: equal to the last digit; 1e-4 allows thread-order rounding
        assert losses[step] == pytest.approx(loss, rel=1e-4), step
    final, reference = loaded["metrics"], setup["reference"]["metrics"]
    assert final["train.loss_last"] == pytest.approx(reference["train.loss_last"], rel=1e-2)
    assert final["train.loss"] == pytest.approx(reference["train.loss"], rel=1e-2)  # the whole run's mean
    assert final["eval.loss"] == pytest.approx(reference["eval.loss"], rel=1e-2)
    assert final["train.steps"] == STEPS
    fsck = subprocess.run(["git", "-C", str(registry), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    return loaded


def test_ctrl_c_then_resume_continues_the_run_exactly(tmp_path, setup):
    registry, run_id, stopped = _interrupted(tmp_path, setup, ("sigint", 10))
    assert stopped.returncode == 130, stopped.stderr
    run = _registry(registry).load_run(run_id)["run"]
    assert run["status"] == "interrupted"
    # The stop saved a checkpoint at the step it stopped at (the step after the Ctrl-C), so nothing is redone.
    checkpoints = sorted((Path(run["output_dir"]) / "checkpoints").glob("checkpoint-*"))
    assert [path.name for path in checkpoints] == ["checkpoint-11", "checkpoint-8"]
    resumed = ftkit("resume", run_id, "--json", "--registry", str(registry))
    loaded = _assert_continues_reference(registry, run_id, setup, resumed)
    assert "from step 11" in resumed.stderr
    assert any(event.get("kind") == "resume" for event in loaded["events"])


def test_kill_9_mid_training_then_resume_reaches_the_uninterrupted_loss(tmp_path, setup):
    registry, run_id, stopped = _interrupted(tmp_path, setup, ("kill", 10))
    assert stopped.returncode == -signal.SIGKILL
    run = _registry(registry).load_run(run_id)["run"]
    assert run["status"] == "lost"  # running in the registry, its process gone
    assert run["last_checkpoint"]["step"] == 8
    resumed = ftkit("resume", run_id, "--json", "--registry", str(registry))
    _assert_continues_reference(registry, run_id, setup, resumed)
    assert "from step 8" in resumed.stderr


def test_kill_9_while_a_checkpoint_is_written_resumes_from_the_one_before(tmp_path, setup):
    registry, run_id, stopped = _interrupted(tmp_path, setup, ("kill-in-checkpoint", 8))
    assert stopped.returncode == -signal.SIGKILL
    folder = Path(_registry(registry).load_run(run_id)["run"]["output_dir"]) / "checkpoints"
    names = sorted(path.name for path in folder.iterdir() if path.is_dir())
    assert names == [".ftkit-saving-checkpoint-8", "checkpoint-4"]  # the half-written one never got its name
    resumed = ftkit("resume", run_id, "--json", "--registry", str(registry))
    _assert_continues_reference(registry, run_id, setup, resumed)
    assert "from step 4" in resumed.stderr
    assert not (folder / ".ftkit-saving-checkpoint-8").exists()  # removed at the resumed start


def test_sigterm_during_a_resumed_run_saves_records_interrupted_and_exits_130(tmp_path, setup):
    """The resumed run has `ftkit run`'s lifecycle: running again with a heartbeat in this process, SIGTERM taken
    as Ctrl-C (finish the step, save, record interrupted, exit 130), the checkpoint recorded; resuming again
    still reaches the uninterrupted run's losses."""
    registry, run_id, _ = _interrupted(tmp_path, setup, ("sigint", 10))
    resumed = ftkit("resume", run_id, "--json", "--registry", str(registry), fault=("sigterm", 14))
    assert resumed.returncode == 130, resumed.stderr
    assert f"heartbeats: ['{run_id}']" in resumed.stderr  # beating while the resumed run trained
    assert "SIGTERM received" in resumed.stderr and "Traceback" not in resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "interrupted"
    loaded = _registry(registry).load_run(run_id)
    assert loaded["run"]["status"] == "interrupted"
    folder = Path(loaded["run"]["output_dir"]) / "checkpoints"
    assert (folder / "checkpoint-15" / "ftkit-checkpoint.json").is_file()  # saved at the step it stopped at
    assert loaded["run"]["last_checkpoint"]["step"] == 15
    assert not (registry / ".git" / "ftkit-heartbeats" / run_id).exists()  # finished: no heartbeat left
    again = ftkit("resume", run_id, "--json", "--registry", str(registry))
    _assert_continues_reference(registry, run_id, setup, again)
    assert "from step 15" in again.stderr


def test_resume_refuses_changed_settings_and_names_the_fork(tmp_path, setup):
    registry, run_id, _ = _interrupted(tmp_path, setup, ("sigint", 10))
    before = subprocess.run(["git", "-C", str(registry), "rev-parse", "HEAD"], capture_output=True, text=True)
    refused = ftkit("resume", run_id, "--registry", str(registry), "--set", "training.learning_rate=0.002")
    assert refused.returncode == 2, refused.stderr
    assert "training.learning_rate: 0.01 → 0.002" in refused.stderr
    assert f"ftkit rerun {run_id} --from-checkpoint 11 --set training.learning_rate=0.002" in refused.stderr
    assert "Traceback" not in refused.stderr
    after = subprocess.run(["git", "-C", str(registry), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert after.stdout == before.stdout
    # A setting outside the config hash may change: the resume goes ahead (and keeps more checkpoints).
    kept = ftkit(
        "resume", run_id, "--json", "--registry", str(registry), "--set", "training.keep_checkpoints=5"
    )
    _assert_continues_reference(registry, run_id, setup, kept)


def test_resume_without_a_complete_checkpoint_says_what_exists(tmp_path, setup):
    registry, run_id, _ = _interrupted(tmp_path, setup, ("kill-in-checkpoint", 4))
    refused = ftkit("resume", run_id, "--registry", str(registry))
    assert refused.returncode == 2, refused.stderr
    assert "no complete checkpoint" in refused.stderr
    assert "incomplete checkpoints: .ftkit-saving-checkpoint-4" in refused.stderr
    assert _registry(registry).load_run(run_id)["run"]["status"] == "lost"


def test_rerun_from_checkpoint_forks_from_its_weights_and_records_where(tmp_path, setup):
    from safetensors.torch import load_file

    registry, run_id, _ = _interrupted(tmp_path, setup, ("sigint", 10))
    # A learning rate too small to move the weights: the fork's output must hold the checkpoint's adapter.
    forked = ftkit(
        "rerun", run_id, "--from-checkpoint", "8", "--json", "--registry", str(registry),
        "--set", "training.learning_rate=1e-9", "--set", "training.max_steps=1",
    )  # fmt: skip
    assert forked.returncode == 0, forked.stderr
    document = json.loads(forked.stdout)
    run = _registry(registry).load_run(document["run_id"])["run"]
    assert run["parent"] == run_id
    checkpoint = (
        Path(_registry(registry).load_run(run_id)["run"]["output_dir"]) / "checkpoints" / "checkpoint-8"
    )
    assert run["start_checkpoint"] == {"run": run_id, "step": 8, "path": str(checkpoint)}
    started = load_file(checkpoint / "adapter_model.safetensors")
    trained = load_file(Path(document["output_dir"]) / "adapter_model.safetensors")
    assert started.keys() == trained.keys()
    assert any(name.endswith("lora_B.weight") and tensor.abs().max() > 0 for name, tensor in started.items())
    for name, tensor in started.items():  # lora_B starts at zero: only the checkpoint makes these equal
        assert (trained[name] - tensor).abs().max() < 1e-6, name
    shown = ftkit("show", document["run_id"], "--registry", str(registry))
    assert f"run {run_id} step 8:" in shown.stdout
    missing = ftkit("rerun", run_id, "--from-checkpoint", "5", "--registry", str(registry))
    assert (
        missing.returncode == 2 and "no complete checkpoint at step 5 (it has steps 8, 11)" in missing.stderr
    )
