"""Fault tests on real `ftkit run` processes (tiny model): kill -9 at a pause point (FTKIT_TEST_PAUSE_AT,
registry/testpoints.py), SIGTERM mid-training, two quick Ctrl-C, Ctrl-C during the model load. Each checks the run's
recorded status, `git fsck --strict`, and that the run recorded before it is untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.preflight import check_registry_ready
from ftkit.registry.store import RunRegistry
from ftkit.registry.testpoints import MARKER
from tests.registry.conftest import git, make_record

WAIT_S = 300  # a guard against a hung child, never an assertion about speed


def _registry_with_one_run(tmp_path: Path) -> tuple[Path, str, str]:
    """A registry holding one finished run: (root, its id, its folder's tree sha)."""
    root = tmp_path / "reg"
    with RunRegistry.open(root) as registry:
        record = make_record(registry)
        registry.commit_run(record)
        tree = git(registry, "rev-parse", f"main:runs/{record.run_id}").strip()
    return root, record.run_id, tree


def _start(
    recipe: Path, root: Path, *extra: str, pause: str | None = None, session: bool = False
) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", FTKIT_TEST_PAUSE_AT=pause or "")
    return subprocess.Popen(
        [sys.executable, "-m", "ftkit", "run", str(recipe), "--json", "--registry", str(root), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=session,
    )


def _read_until(process: subprocess.Popen, test) -> str:  # noqa: ANN001 - a str -> bool
    seen = ""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        if test(line):
            return seen
    process.kill()
    raise AssertionError(f"the marker never came; stderr:\n{seen}")


def _fsck_clean(root: Path) -> None:
    proc = subprocess.run(
        ["git", "--git-dir", str(root / ".git"), "fsck", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _runs_json(root: Path) -> tuple[dict[str, dict], str]:
    result = CliRunner().invoke(app, ["runs", "--all", "--json", "--registry", str(root)])
    assert result.exit_code == 0, result.output
    return {run["id"]: run for run in json.loads(result.stdout)["runs"]}, result.stderr


def _only_run_besides(root: Path, earlier: str) -> dict:
    with RunRegistry.open(root, create=False) as registry:
        ids = [s["id"] for s in registry.summaries() if s["id"] != earlier]
        assert len(ids) == 1, ids
        return registry.load_run(ids[0])


def _kill_at(tmp_path: Path, recipe: Path, point: str) -> tuple[Path, str, str, dict, subprocess.Popen]:
    root, earlier, tree = _registry_with_one_run(tmp_path)
    process = _start(recipe, root, pause=point)
    _read_until(process, lambda line: line.startswith(f"{MARKER} {point}"))
    running = _only_run_besides(root, earlier)
    process.kill()  # SIGKILL
    process.communicate(timeout=WAIT_S)
    return root, earlier, tree, running, process


def _check_lost(root: Path, earlier: str, tree: str, running: dict, pid: int) -> dict:
    assert running["run"]["status"] == "running"
    assert running["run"]["process"]["pid"] == pid
    runs, stderr = _runs_json(root)  # the first command that notices records `lost`
    run = runs[running["id"]]
    assert run["status"] == "lost" and f"pid {pid}" in run["lost"]["reason"], run
    assert f"run {running['id']}" in stderr and "recorded as lost" in stderr
    commits = git(root, "rev-list", "--count", "main")
    again, stderr = _runs_json(root)  # once: a second command commits nothing
    assert again[running["id"]]["status"] == "lost" and "recorded as lost" not in stderr
    assert git(root, "rev-list", "--count", "main") == commits
    assert git(root, "rev-parse", f"main:runs/{earlier}").strip() == tree  # nothing earlier lost
    _fsck_clean(root)
    return run


def test_kill_9_during_model_load_leaves_a_lost_run(tmp_path, recipe_file):
    root, earlier, tree, running, process = _kill_at(tmp_path, recipe_file, "model-load")
    assert running["run"]["config_hash"] is None  # committed before anything was resolved
    assert "packages" in running["env"] and running["recipe"] == recipe_file.read_text()
    _check_lost(root, earlier, tree, running, process.pid)
    hidden = CliRunner().invoke(app, ["runs", "--json", "--registry", str(root)])
    assert [r["id"] for r in json.loads(hidden.stdout)["runs"]] == [earlier]  # lost: only with --all


def test_kill_9_during_the_final_save_leaves_a_lost_run_with_its_resolved_recipe(tmp_path, recipe_file):
    root, earlier, tree, running, process = _kill_at(tmp_path, recipe_file, "final-save")
    assert len(running["run"]["config_hash"] or "") == 64  # updated once resolved
    assert running["resolved"]["training"]["max_steps"] == 12
    _check_lost(root, earlier, tree, running, process.pid)
    output = Path(running["run"]["output_dir"])
    assert not (output / "adapter_model.safetensors").exists()  # a half save never looks complete


def test_kill_9_during_the_registry_commit_then_the_lock_it_left_is_cleared_at_once(tmp_path, recipe_file):
    root, earlier, tree, running, process = _kill_at(tmp_path, recipe_file, "registry-commit")
    output = Path(running["run"]["output_dir"])
    assert (output / "adapter_model.safetensors").is_file()  # trained and saved; only the commit was cut
    # The process was killed while its ref update was in flight; git's lock is what such a kill leaves.
    lock = root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text(git(root, "rev-parse", "main"))
    assert list((root / ".git" / "ftkit-writers").iterdir())  # the killed process's writer note
    removed = check_registry_ready(root, wait=0)  # no 10-minute wait: the writer's pid is dead
    assert removed == [lock] and not lock.exists()
    assert not list((root / ".git" / "ftkit-writers").iterdir())
    run = _check_lost(root, earlier, tree, running, process.pid)
    assert run["output_dir"] == str(output)  # the lost run still says where its complete output is


def test_sigterm_mid_training_saves_records_interrupted_and_exits_130(tmp_path, recipe_file):
    root, earlier, tree = _registry_with_one_run(tmp_path)
    process = _start(
        recipe_file, root, "--set", "training.max_steps=100000", "--set", "training.logging_steps=1"
    )
    seen = _read_until(process, lambda line: line.startswith("step "))
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, seen + stderr
    payload = json.loads(stdout)
    assert payload["status"] == "interrupted"
    assert (Path(payload["output_dir"]) / "adapter_model.safetensors").is_file()
    assert "SIGTERM" in stderr and "Traceback" not in stderr
    runs, _ = _runs_json(root)
    assert runs[payload["run_id"]]["status"] == "interrupted"
    assert git(root, "rev-parse", f"main:runs/{earlier}").strip() == tree
    _fsck_clean(root)


def test_ctrl_c_in_a_terminal_reaches_gits_helpers_too_and_the_run_is_still_recorded(tmp_path, recipe_file):
    # A terminal's Ctrl-C signals the whole foreground process group: GitPython's `git cat-file` helpers die with
    # ftkit, and the final commit must not depend on them (it left the record pending before).
    root, earlier, tree = _registry_with_one_run(tmp_path)
    process = _start(
        recipe_file,
        root,
        "--set",
        "training.max_steps=100000",
        "--set",
        "training.logging_steps=1",
        session=True,
    )
    seen = _read_until(process, lambda line: line.startswith("step "))
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, seen + stderr
    assert "Traceback" not in stderr and "pending" not in stderr, stderr
    payload = json.loads(stdout)
    runs = {
        line.split("/")[1]
        for line in git(root, "ls-tree", "--name-only", "-r", "main").split()
        if "/run.json" in line
    }
    assert payload["run_id"] in runs  # committed by this process, not left for the next command
    assert json.loads(git(root, "show", f"main:runs/{payload['run_id']}/run.json"))["status"] == "interrupted"
    _fsck_clean(root)


def test_two_quick_ctrl_c_exit_at_once_and_still_record_the_run(tmp_path, recipe_file):
    root, earlier, tree = _registry_with_one_run(tmp_path)
    process = _start(
        recipe_file, root, "--set", "training.max_steps=100000", "--set", "training.logging_steps=1"
    )
    seen = _read_until(process, lambda line: line.startswith("step "))
    process.send_signal(signal.SIGINT)
    seen += _read_until(process, lambda line: "stopping after this step" in line)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, seen + stderr
    assert "Traceback" not in seen + stderr
    payload = json.loads(stdout)
    assert payload["status"] == "interrupted"
    runs, _ = _runs_json(root)
    assert runs[payload["run_id"]]["status"] == "interrupted"
    if not (Path(payload["output_dir"] or tmp_path / "none") / "adapter_model.safetensors").exists():
        assert "saved in" not in stderr and "nothing was saved" in stderr  # says only what is true
    assert git(root, "rev-parse", f"main:runs/{earlier}").strip() == tree
    _fsck_clean(root)


def test_ctrl_c_during_the_model_load_says_nothing_was_saved(tmp_path, recipe_file):
    root, earlier, tree = _registry_with_one_run(tmp_path)
    process = _start(recipe_file, root, pause="model-load")
    _read_until(process, lambda line: line.startswith(f"{MARKER} model-load"))
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=WAIT_S)
    assert process.returncode == 130, stderr
    assert "None" not in stderr and "saved in" not in stderr and "nothing was saved" in stderr
    assert "Traceback" not in stderr
    runs, _ = _runs_json(root)
    [run] = [r for r in runs.values() if r["id"] != earlier]
    assert run["status"] == "interrupted" and run["output_dir"] is None
    _fsck_clean(root)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_a_killed_commits_lock_does_not_block_ftkit_tag(tmp_path, recipe_file):
    """Not only `ftkit run`'s preflight: any write (here `ftkit tag`) clears a lock a killed ftkit left, at once."""
    root, earlier, tree, running, process = _kill_at(tmp_path, recipe_file, "registry-commit")
    lock = root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text(git(root, "rev-parse", "main"))  # what the kill left, as in the test above
    tagged = subprocess.run(
        [sys.executable, "-m", "ftkit", "tag", earlier, "kept", "--registry", str(root)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert tagged.returncode == 0, tagged.stderr
    assert not lock.exists()
    shown = subprocess.run(
        [sys.executable, "-m", "ftkit", "show", "kept", "--json", "--registry", str(root)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert json.loads(shown.stdout)["id"] == earlier
    _fsck_clean(root)
