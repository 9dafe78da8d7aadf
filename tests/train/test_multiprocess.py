"""`ftkit run` in 2 CPU processes (gloo, through Accelerate's launcher) against the same run in 1 process.

Reference: 1 process x batch 8 and 2 processes x batch 4 see the same 8 rows at each step (Accelerate hands rank r
the r-th of each pair of per-process batches, from the same seeded order), so their per-step losses agree if the
loss is normalised the same way. It is: transformers' `average_tokens_across_devices` (on by default) divides
each rank's summed token loss by the token count of all ranks together, so the rows' unequal token counts weigh as
they do in one batch. LoRA dropout is off: with it, each rank would draw its own masks from its own seeded
generator, a different stream than the one process draws.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import chat_rows, write_jsonl

pytestmark = pytest.mark.slow

RECIPE = """\
name: two-processes
model: {model}
data:
  train: {train}
  eval: {eval}
method:
  name: lora
  r: 8
  alpha: 16
  dropout: 0.0
  target_modules: all-linear
training:
  max_steps: 4
  learning_rate: 1.0e-2
  batch_size: {batch}
  grad_accum: 1
  max_seq_len: 64
  precision: fp32
  seed: 42
evaluation:
  during_training: 0
output: {output}
{extra}"""


def write_case(root: Path, model: Path, batch: int, extra: str = "") -> Path:
    train = write_jsonl(root / "train.jsonl", chat_rows(64, seed=1))
    evaluation = write_jsonl(root / "eval.jsonl", chat_rows(16, seed=2))
    recipe = root / "recipe.yaml"
    recipe.write_text(
        RECIPE.format(
            model=model, train=train, eval=evaluation, batch=batch, output=root / "outputs", extra=extra
        )
    )
    return recipe


def ftkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "FTKIT_DEBUG": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ftkit", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def losses(registry: Path, run_id: str) -> list[tuple[int, float]]:
    from ftkit.registry.store import RunRegistry

    history = RunRegistry.open(registry).load_run(run_id)["history"]
    return [(row["step"], row["loss"]) for row in history if "loss" in row]


def commit_messages(registry: Path, run_id: str) -> list[str]:
    """The registry's commit subjects about `run_id`, oldest first, with the run id taken out."""
    subjects = subprocess.run(
        ["git", "-C", str(registry), "log", "--reverse", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [subject.replace(run_id, "RUN") for subject in subjects if run_id in subject]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    """The same training in 1 process (batch 8) and in 2 processes (batch 4 each), each in its own registry."""
    made = {}
    for processes, batch in ((1, 8), (2, 4)):
        root = tmp_path_factory.mktemp(f"p{processes}")
        recipe = write_case(root, tiny_model_dir, batch)
        result = ftkit(
            "run",
            str(recipe),
            "--num-processes",
            str(processes),
            "--json",
            "--registry",
            str(root / "registry"),
        )
        made[processes] = (root, result)
    return made


def test_two_processes_match_one_process_at_the_same_global_batch(runs):
    (root1, one), (root2, two) = runs[1], runs[2]
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    single, double = json.loads(one.stdout), json.loads(two.stdout)
    reference = losses(root1 / "registry", single["run_id"])
    measured = losses(root2 / "registry", double["run_id"])
    assert [step for step, _ in measured] == [1, 2, 3, 4]
    assert [step for step, _ in measured] == [step for step, _ in reference]
    for (step, expected), (_, got) in zip(reference, measured, strict=True):
        assert got == pytest.approx(expected, abs=1e-4), f"step {step}"
    assert reference[-1][1] < reference[0][1] - 0.05  # it trained: equal losses are not two idle runs
    assert double["metrics"]["train.num_processes"] == 2
    assert double["metrics"]["train.global_batch"] == 8
    assert "train.num_processes" not in single["metrics"]
    assert "2 processes (gloo): global batch 8 = 4 per process x 2 processes" in two.stderr


def test_two_processes_make_one_run_one_output_and_as_many_commits_as_one(runs):
    from ftkit.registry.store import RunRegistry

    (root1, _), (root2, two) = runs[1], runs[2]
    payload = json.loads(two.stdout)
    assert len(RunRegistry.open(root2 / "registry").summaries()) == 1
    # The parent alone commits, as the one-process run does: the run as running before the workers start, its
    # resolved recipe as rank 0 reports it, then its one final record.
    mine = commit_messages(root2 / "registry", payload["run_id"])
    single = json.loads(runs[1][1].stdout)["run_id"]
    reference = commit_messages(root1 / "registry", single)
    assert [m.split(", eval.loss=")[0] for m in mine] == [m.split(", eval.loss=")[0] for m in reference]
    assert len(mine) == 3 and "updated config_hash, resolved" in mine[1]
    assert [m for m in mine if "succeeded" in m] == [mine[-1]]
    assert [path.name for path in (root2 / "outputs").iterdir()] == [payload["run_id"]]
    written = sorted(path.name for path in Path(payload["output_dir"]).iterdir())
    assert "adapter_model.safetensors" in written and "metrics.json" in written
    assert not [name for name in written if name.startswith(".")]  # no staging folder left by a second writer


def test_saved_adapter_reloads_to_the_reported_eval_loss(runs, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tests.cli.test_run import eval_loss_of

    payload = json.loads(runs[2][1].stdout)
    output = Path(payload["output_dir"])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), output)
    assert eval_loss_of(model, output) == pytest.approx(payload["metrics"]["eval.loss"], abs=1e-5)
    assert payload["metrics"]["eval.loss"] < payload["metrics"]["base.eval.loss"]


def test_a_launcher_that_starts_one_process_is_a_failed_run_naming_the_rank(tmp_path, tiny_model_dir):
    """An accelerate config file saying `distributed_type: NO` makes the launcher start one plain process."""
    config = tmp_path / "accelerate.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nuse_cpu: true\nnum_processes: 1\n"
    )
    extra = f"distributed:\n  num_processes: 2\n  config_file: {config}\n"
    recipe = write_case(tmp_path, tiny_model_dir, 4, extra)
    result = ftkit("run", str(recipe), "--json", "--registry", str(tmp_path / "registry"))
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "failed"
    assert "rank 0 failed (exit 1)" in payload["error"]
    assert "reports 1 process but distributed.num_processes is 2" in payload["error"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_a_failing_rank_is_named_and_the_run_recorded_failed(tmp_path, tiny_model_dir):
    """Rank 1 alone fails (a fault injected into that process only, through sitecustomize): the run fails with
    exit 1, rank 1 and its error named, and the record says so; rank 0 was stopped by the launcher."""
    from ftkit.registry.store import RunRegistry

    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import ftkit.train.trainer as trainer\n"
        "    def broken(*args, **kwargs):\n"
        "        raise RuntimeError('injected fault on this rank')\n"
        "    trainer.build_trainer = broken\n"
    )
    recipe = write_case(tmp_path, tiny_model_dir, 4)
    result = ftkit(
        "run",
        str(recipe),
        "--num-processes",
        "2",
        "--json",
        "--registry",
        str(tmp_path / "registry"),
        env={"PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["error"].startswith("rank 1 failed (exit 1): RuntimeError: injected fault on this rank")
    assert "rank 0" in payload["error"]
    assert "Traceback" not in result.stderr
    record = RunRegistry.open(tmp_path / "registry").load_run(payload["run_id"])
    assert record["run"]["status"] == "failed"
    assert "rank 1 failed" in record["run"]["error"]


def test_bad_distributed_settings_are_exit_2_located(tmp_path, tiny_model_dir):
    extra = "distributed:\n  num_processes: 3\n  num_machines: 2\n  machine_rank: 2\n"
    recipe = write_case(tmp_path, tiny_model_dir, 4, extra)
    result = ftkit("run", str(recipe), "--registry", str(tmp_path / "registry"))
    assert result.returncode == 2, result.stderr
    lines = recipe.read_text().splitlines()
    rank_line = next(i for i, line in enumerate(lines, 1) if "machine_rank" in line)
    assert f"{recipe}:{rank_line}: distributed.machine_rank: must be below num_machines (2)" in result.stderr
    assert "distributed.main_process_ip: required with num_machines: 2" in result.stderr
    assert "3 processes cannot be split evenly over 2 machines" in result.stderr
    assert not (tmp_path / "registry").exists()


def test_only_the_first_process_reports_to_trackers(tmp_path, tiny_model_dir):
    """Two processes with TensorBoard tracking: one event file (rank 0's) with each step once, and the tracker's
    folder recorded in the registry through the parent, as a one-process run records it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ftkit.registry.store import RunRegistry

    recipe = write_case(tmp_path, tiny_model_dir, 4, "tracking: [tensorboard]\n")
    result = ftkit(
        "run", str(recipe), "--num-processes", "2", "--json", "--registry", str(tmp_path / "registry")
    )
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    registry = RunRegistry.open(tmp_path / "registry")
    with registry:
        run = registry.load_run(run_id)["run"]
    log_dir = Path(run["tracking"]["tensorboard"]["log_dir"])
    assert log_dir == Path(run["output_dir"]) / "tensorboard"
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(log_dir))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [step for step, _ in losses(tmp_path / "registry", run_id)] == [1, 2, 3, 4]
