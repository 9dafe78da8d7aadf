"""The registry is checked before a run trains: stale git locks are cleared, live ones and a read-only folder
stop the run with exit 2 before any training."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.errors import RegistryError
from ftkit.registry.preflight import check_registry_ready
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record


def _lock(registry: RunRegistry, name: str, age_s: float) -> Path:
    lock = registry.root / ".git" / name
    lock.write_text("0" * 40 + "\n")
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


@pytest.mark.parametrize("name", ["refs/heads/main.lock", "HEAD.lock"])
def test_stale_lock_is_removed_with_a_note_and_the_run_commits(tmp_path, name):
    registry = RunRegistry.open(tmp_path / "reg")
    lock = _lock(registry, name, age_s=3600)
    notes: list[str] = []
    removed = check_registry_ready(registry.root, wait=0, note=notes.append)
    assert removed == [lock]
    assert not lock.exists()
    assert len(notes) == 1 and str(lock) in notes[0] and "stale" in notes[0]
    record = make_record(registry)
    registry.commit_run(record)
    assert f"runs/{record.run_id}/" in git(registry, "ls-tree", "-r", "--name-only", "main")


def test_fresh_lock_fails_naming_the_lock_file_and_the_command(tmp_path):
    registry = RunRegistry.open(tmp_path / "reg")
    lock = _lock(registry, "refs/heads/main.lock", age_s=5)
    notes: list[str] = []
    with pytest.raises(RegistryError) as caught:
        check_registry_ready(registry.root, wait=0.3, poll=0.1, note=notes.append)
    assert caught.value.exit_code == 2
    assert str(lock) in caught.value.message
    assert f"rm {lock}" in (caught.value.hint or "")
    assert lock.exists()  # a live lock is never removed
    assert any("waiting" in note and str(lock) in note for note in notes)


def test_old_lock_held_open_by_a_process_is_not_removed(tmp_path):
    registry = RunRegistry.open(tmp_path / "reg")
    lock = _lock(registry, "HEAD.lock", age_s=3600)
    # This test process holds it open, as a running git would.
    with open(lock, encoding="utf-8"), pytest.raises(RegistryError, match="registry is locked"):
        check_registry_ready(registry.root, wait=0)
    assert lock.exists()


def test_lock_released_while_waiting_lets_the_check_pass(tmp_path):
    registry = RunRegistry.open(tmp_path / "reg")
    lock = _lock(registry, "refs/heads/main.lock", age_s=1)
    # A real process that holds nothing and deletes the lock shortly, as a finishing git does.
    proc = subprocess.Popen(["sh", "-c", f"sleep 0.3; rm -f '{lock}'"])
    try:
        assert check_registry_ready(registry.root, wait=60, poll=0.05) == []
    finally:
        proc.wait()
    assert not lock.exists()


@pytest.fixture
def read_only_dir(tmp_path):
    """An empty read-only tmpfs (root ignores permission bits, so chmod would prove nothing)."""
    target = tmp_path / "ro"
    target.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("mount is unavailable")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(target)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {proc.stderr.decode(errors='replace').strip()}")
    yield target
    subprocess.run(["umount", str(target)], check=False)


def test_read_only_registry_folder_is_refused_naming_it(read_only_dir):
    with pytest.raises(RegistryError) as caught:
        check_registry_ready(read_only_dir)
    assert caught.value.exit_code == 2
    assert str(read_only_dir) in caught.value.message


def test_run_into_read_only_registry_exits_2_before_training(read_only_dir, recipe_file, tmp_path):
    result = CliRunner().invoke(app, ["run", str(recipe_file), "--registry", str(read_only_dir)])
    assert result.exit_code == 2, result.output
    assert str(read_only_dir) in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_six_processes_creating_one_new_registry_all_succeed(tmp_path):
    root = tmp_path / "new-registry"
    # Each process waits for a shared start file so they really race, then opens (creates) the registry.
    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "while not Path(sys.argv[2]).exists(): time.sleep(0.001)\n"
        "from ftkit.registry.store import RunRegistry\n"
        "print(RunRegistry.open(sys.argv[1]).head)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(6)
    ]
    time.sleep(1.0)  # let the interpreters start and import; not an assertion
    go.touch()
    results = [(proc.wait(timeout=120), *proc.communicate()) for proc in procs]
    assert [code for code, _, _ in results] == [0] * 6, [err for _, _, err in results]
    heads = {out.strip() for _, out, _ in results}
    # Everyone sees the one first commit git itself reports as the branch tip.
    assert heads == {git(root, "rev-parse", "main").strip()}
    assert git(root, "rev-list", "--count", "main").strip() == "1"
    assert sorted(entry.name for entry in root.iterdir()) == [".git"]  # no scratch left behind
