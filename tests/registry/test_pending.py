"""A run whose commit fails after training is kept pending and recorded, once, by the next command.

The failures are real (a git lock, a read-only or full registry on a small tmpfs); only their timing is injected:
they start right after training, past the pre-training check, by wrapping the real `execute_run`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import RegistryError
from ftkit.registry import pending, store
from ftkit.registry.store import RunRegistry
from ftkit.train import runner
from tests.registry.conftest import git, make_record

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _after_training(monkeypatch: pytest.MonkeyPatch, action) -> None:
    """Run `action()` once training finished, before the run is committed."""
    real = runner.execute_run

    def execute_then_fail(*args, **kwargs):
        result = real(*args, **kwargs)
        action()
        return result

    monkeypatch.setattr(runner, "execute_run", execute_then_fail)


def _ftkit(*args: str):
    return CliRunner().invoke(app, list(args))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _trained_metrics(output_dir: str) -> dict:
    """The metrics the runner wrote into the run's output folder (wall time moves on after it is written)."""
    metrics = json.loads((Path(output_dir) / "metrics.json").read_text())
    metrics.pop("run.wall_time_s")
    return metrics


def _run_commits(registry: Path, run_id: str) -> int:
    """Commits that recorded the run's final record (its `running` start and updates are not counted)."""
    log = git(
        registry, "log", "--format=%(trailers:key=Ftkit-Status,valueonly)", "main", "--", f"runs/{run_id}"
    )
    return sum(status in ("succeeded", "failed", "interrupted") for status in log.split())


def test_lock_after_training_keeps_the_run_pending_and_the_next_command_records_it_once(
    tmp_path, recipe_file, monkeypatch
):
    registry = tmp_path / "registry"
    RunRegistry.open(registry).close()
    lock = registry / ".git" / "refs" / "heads" / "main.lock"
    _after_training(monkeypatch, lambda: lock.write_text("held by another writer\n"))
    monkeypatch.setattr(store, "_MAX_ATTEMPTS", 3)  # a held lock is retried 200 times (~40 s) otherwise

    failed = _ftkit("run", str(recipe_file), "--registry", str(registry))
    text = _flat(failed.output)
    assert failed.exit_code == 2, failed.output
    assert "Traceback" not in failed.output
    # git's own message, and the lock it names in the hint
    assert f"Unable to create '{lock}': File exists" in text
    assert f"rm {lock}" in text
    kept = list((registry / ".git" / pending.FOLDER).glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in text
    assert "the next ftkit command against this registry records it" in text
    document = json.loads(kept[0].read_text())
    run_id = document["record"]["run_id"]
    assert kept[0].name == f"{run_id}.json"
    assert _run_commits(registry, run_id) == 0
    # Everything the commit needs: the record and the rows of artifacts already in the weights store.
    output_dir = document["record"]["output_dir"]
    stored = {row["name"] for row in document["artifacts"]}
    assert {"adapter_model.safetensors", "adapter_config.json", "metrics.json"} <= stored
    assert all((registry / row["path"]).is_file() for row in document["artifacts"])

    lock.unlink()  # the other writer finished
    shown = _ftkit("show", run_id, "--json", "--registry", str(registry))
    assert shown.exit_code == 0, shown.output
    assert f"recorded pending run {run_id} (tiny-demo) from {kept[0]}" in _flat(shown.stderr)
    run = json.loads(shown.stdout)
    assert run["run"]["status"] == "succeeded"
    metrics = {key: value for key, value in run["metrics"].items() if key != "run.wall_time_s"}
    assert metrics == _trained_metrics(output_dir)
    assert [row["sha256"] for row in run["artifacts"]] == [row["sha256"] for row in document["artifacts"]]
    assert not kept[0].exists()

    again = _ftkit("runs", "--all", "--registry", str(registry))
    assert again.exit_code == 0, again.output
    assert "recorded pending" not in again.output
    assert _run_commits(registry, run_id) == 1


@pytest.fixture
def registry_disk(tmp_path):
    """A registry on its own 8 MiB tmpfs, so it can be made read-only or full while a run trains."""
    target = tmp_path / "registry"
    target.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("mount is unavailable, so no registry disk can be made read-only or full")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(target)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.decode(errors='replace').strip()}")
    yield target
    subprocess.run(["umount", "--lazy", str(target)], check=False)  # git helper processes may hold it open


def _remount(target: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(target)], check=True, capture_output=True)


def _fill(target: Path) -> None:
    with open(target / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


@pytest.mark.parametrize("trouble", ["read-only", "full"])
def test_registry_disk_failing_after_training_keeps_the_run_in_the_state_folder(
    tmp_path, recipe_file, registry_disk, monkeypatch, trouble
):
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    _after_training(
        monkeypatch,
        (lambda: _remount(registry_disk, "ro")) if trouble == "read-only" else lambda: _fill(registry_disk),
    )
    failed = _ftkit("run", str(recipe_file), "--registry", str(registry_disk))
    text = _flat(failed.output)
    assert failed.exit_code == 2, failed.output
    assert "Traceback" not in failed.output
    assert ("Read-only file system" if trouble == "read-only" else "No space left on device") in text
    kept = list(state.glob("ftkit/pending/*/*.json"))
    assert len(kept) == 1 and str(kept[0]) in text
    assert kept[0].parent == pending.locations(registry_disk)[1]
    run_id = json.loads(kept[0].read_text())["record"]["run_id"]

    # Still broken: a reading command warns, keeps the run pending, and still answers.
    still = _ftkit("runs", "--all", "--registry", str(registry_disk))
    assert still.exit_code == 0, still.output
    assert f"pending run {run_id}" in _flat(still.stderr) and "stays pending" in _flat(still.stderr)
    assert kept[0].exists()

    if trouble == "read-only":
        _remount(registry_disk, "rw")
    else:
        (registry_disk / "filler").unlink()
    listed = _ftkit("runs", "--all", "--json", "--registry", str(registry_disk))
    assert listed.exit_code == 0, listed.output
    assert f"recorded pending run {run_id}" in _flat(listed.stderr)
    assert [run["id"] for run in json.loads(listed.stdout)["runs"]] == [run_id]
    assert not kept[0].exists()
    assert _run_commits(registry_disk, run_id) == 1


SECRET_NAME = "hf_PendingNameTok9x8c7v6b5"
SECRET_ENV = "pendingEnvSecret4242xyz"
SECRET_COMMENT = "PendingCommentPw5151"


def test_pending_file_is_scrubbed_atomic_and_committed_once(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("WANDB_API_KEY", SECRET_ENV)
    output = tmp_path / "out"
    output.mkdir()
    (output / "adapter_model.safetensors").write_bytes(b"\0weights\1")
    record = make_record(
        registry,
        name=f"run-{SECRET_NAME}",
        recipe_text=f"model: tiny\n# password: {SECRET_COMMENT}\n",
        overrides=[f"training.note={SECRET_ENV}"],
        output_dir=str(output),
    )
    path = pending.keep(registry.root, record, None, f"git said no ({SECRET_ENV})")
    assert path == registry.root / ".git" / pending.FOLDER / f"{record.run_id}.json"
    text = path.read_text()
    assert [s for s in (SECRET_NAME, SECRET_ENV, SECRET_COMMENT) if s in text] == []
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert pending.find(registry.root) == [path]

    first = pending.commit_pending(registry)
    assert first.problems == []
    assert first.recorded == [f"recorded pending run {record.run_id} (run-***redacted***) from {path}"]
    loaded = registry.load_run(record.run_id)
    assert loaded["metrics"]["eval.loss"] == 2.0
    assert [row["name"] for row in loaded["artifacts"]] == ["adapter_model.safetensors"]  # stored from output
    assert pending.find(registry.root) == []
    assert pending.commit_pending(registry).recorded == []
    assert _run_commits(registry.root, record.run_id) == 1


def test_a_pending_run_another_command_already_recorded_is_dropped_not_recorded_twice(
    registry, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    record = make_record(registry)
    path = pending.keep(registry.root, record, [], "lock")
    registry.commit_run(
        make_record(registry, run_id=record.run_id, name=record.name)
    )  # the other command won
    outcome = pending.commit_pending(registry)
    assert outcome.recorded == [] and outcome.problems == []
    assert not path.exists()
    assert _run_commits(registry.root, record.run_id) == 1


def test_an_unreadable_pending_file_is_reported_and_left_alone(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    folder = pending.locations(registry.root)[0]
    folder.mkdir(parents=True)
    broken = folder / "20250101-000000-abcdef.json"
    broken.write_text("{not json")
    outcome = pending.commit_pending(registry)
    assert outcome.recorded == []
    assert len(outcome.problems) == 1 and str(broken) in outcome.problems[0]
    assert broken.exists()


def test_a_ref_git_cannot_write_fails_at_once_with_gits_message(registry, add_run):
    """Read-only refs (objects still writable): git's refusal is final, so it is reported, not retried 200 times."""
    heads = registry.root / ".git" / "refs" / "heads"
    add_run()
    if shutil.which("mount") is None:
        pytest.skip("mount is unavailable, so no folder can be made read-only (root ignores permission bits)")
    bound = subprocess.run(["mount", "--bind", str(heads), str(heads)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount (needs root): {bound.stderr.decode(errors='replace').strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(heads)], check=True, capture_output=True)
        with pytest.raises(RegistryError) as caught:
            registry.commit_run(make_record(registry))
    finally:
        subprocess.run(["umount", "--lazy", str(heads)], check=False)
    assert caught.value.message.startswith("git cannot update refs/heads/main in ")
    assert f"Unable to create '{heads / 'main.lock'}': Read-only file system" in caught.value.message
