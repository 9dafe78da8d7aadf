"""A run's registry life through the API: running → updated → finished, lost when its process is gone, merged by
pull, locks of killed writers, and many processes starting, finishing and tagging at once (real git, real
processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry import lifecycle, liveness, pending, processes
from ftkit.registry.preflight import check_registry_ready
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record


def _changed_paths(registry: RunRegistry, commit: str) -> set[str]:
    return set(git(registry, "diff-tree", "-r", "--name-only", "--no-commit-id", commit).split())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _fsck_clean(root: Path) -> None:
    proc = subprocess.run(
        ["git", "--git-dir", str(root / ".git"), "fsck", "--strict"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_start_update_finish_touch_only_that_runs_folder(registry):
    other = make_record(registry)
    registry.commit_run(other)
    record = make_record(registry, status="running")
    start = registry.start_run(record)
    assert _changed_paths(registry, start) == {f"runs/{record.run_id}/{name}" for name in (
        "run.json", "recipe.yaml", "resolved.yaml", "metrics.json", "history.jsonl", "events.jsonl", "env.json",
        "data.json", "artifacts.json")}  # fmt: skip
    loaded = registry.load_run(record.run_id)
    assert loaded["run"]["status"] == "running"
    assert loaded["run"]["process"] == {"host": processes.host(), "pid": os.getpid(),
                                        "pid_start": processes.start_time(os.getpid())}  # fmt: skip
    update = registry.update_run(
        record.run_id, last_checkpoint={"step": 4, "path": "/out/checkpoints/checkpoint-4"}
    )
    assert _changed_paths(registry, update) == {f"runs/{record.run_id}/run.json"}
    fresh = RunRegistry.open(registry.root, create=False)  # the summaries cache sees the update
    [summary] = [s for s in fresh.summaries() if s["id"] == record.run_id]
    assert summary["last_checkpoint"] == {"step": 4, "path": "/out/checkpoints/checkpoint-4"}
    record.status = "interrupted"
    finish = registry.finish_run(record)
    assert {path.split("/")[1] for path in _changed_paths(registry, finish)} == {record.run_id}
    final = RunRegistry.open(registry.root, create=False).load_run(record.run_id)["run"]
    assert final["status"] == "interrupted" and final["last_checkpoint"]["step"] == 4  # carried over
    assert git(registry, "log", "-1", "--format=%(trailers:key=Ftkit-Status,valueonly)", "main").strip() == (
        "interrupted"
    )
    _fsck_clean(registry.root)


def test_a_finished_run_is_never_replaced_nor_updated(registry):
    record = make_record(registry)
    registry.commit_run(record)
    tip = registry.head
    for attempt in (
        lambda: registry.finish_run(record),
        lambda: registry.update_run(record.run_id, config_hash="x"),
    ):
        try:
            attempt()
        except Exception as error:  # RegistryError, exit 2
            assert record.run_id in str(error)
        else:
            raise AssertionError("a finished run was changed")
    assert RunRegistry.open(registry.root, create=False).head == tip


def test_a_dead_pid_or_a_stale_heartbeat_makes_a_running_run_lost_once(registry):
    dead = make_record(registry, status="running", process={"host": processes.host(), "pid": _dead_pid()})
    registry.start_run(dead)
    reused = make_record(registry, status="running", process={"host": processes.host(), "pid": os.getpid(),
                                                              "pid_start": "1"})  # fmt: skip
    registry.start_run(reused)  # a live pid whose start time differs: the pid was reused
    silent = make_record(registry, status="running", process={"host": "elsewhere", "pid": 1})
    registry.start_run(silent)
    beat = liveness.heartbeat_path(registry.root, silent.run_id)
    beat.parent.mkdir(exist_ok=True)
    beat.write_text("{}")
    old = time.time() - liveness.LOST_AFTER_S - 60
    os.utime(beat, (old, old))
    unknown = make_record(registry, status="running", process={"host": "elsewhere", "pid": 1})
    registry.start_run(unknown)  # another host, no heartbeat here: cannot be judged
    alive = make_record(registry, status="running")
    registry.start_run(alive)
    statuses = {s["id"]: s["status"] for s in registry.summaries()}
    assert [statuses[r.run_id] for r in (dead, reused, silent, unknown, alive)] == [
        "lost", "lost", "lost", "running", "running"]  # fmt: skip
    lines = lifecycle.notice_lost(registry)
    assert len(lines) == 3 and all("recorded as lost" in line for line in lines)
    assert "no heartbeat for 11 min" in " ".join(lines)
    tip = registry.head
    assert lifecycle.notice_lost(registry) == [] and registry.head == tip  # once
    stored = RunRegistry.open(registry.root, create=False).load_run(dead.run_id)["run"]
    assert stored["status"] == "lost" and stored["lost"]["noticed_at"]
    assert not beat.exists()
    registry.update_run(alive.run_id, last_checkpoint={"step": 8, "path": "/out/checkpoint-8"})
    shown = CliRunner().invoke(app, ["show", dead.run_id, "--registry", str(registry.root)]).stdout
    assert "lost" in shown and f"pid {dead.process['pid']}" in shown
    shown = CliRunner().invoke(app, ["show", alive.run_id, "--registry", str(registry.root)]).stdout
    assert "step 8: /out/checkpoint-8" in shown
    assert [r["id"] for r in registry.list_runs()] == [alive.run_id, unknown.run_id]  # lost hidden by default


def test_a_pending_final_record_finishes_a_running_run_instead_of_it_turning_lost(registry, tmp_path):
    record = make_record(registry, status="running", process={"host": processes.host(), "pid": _dead_pid()})
    registry.start_run(record)
    record.status = "succeeded"
    pending.keep(registry.root, record, [], "the disk was full")
    assert lifecycle.notice_lost(registry) == []  # its record is on the way, not lost
    outcome = pending.commit_pending(registry)
    assert len(outcome.recorded) == 1
    assert registry.load_run(record.run_id)["run"]["status"] == "succeeded"


def test_resume_makes_an_interrupted_run_running_again_under_the_same_id(registry):
    record = make_record(registry, status="interrupted")
    registry.commit_run(record)
    run = registry.resume_run(record.run_id)
    assert run["status"] == "running" and run["process"]["pid"] == os.getpid()
    record.status = "succeeded"
    registry.finish_run(record)
    assert registry.load_run(record.run_id)["run"]["status"] == "succeeded"


def test_pull_keeps_the_furthest_state_of_a_run_changed_on_both_sides(tmp_path):
    here = RunRegistry.open(tmp_path / "here")
    record = make_record(here, status="running")
    here.start_run(record)
    there_root = tmp_path / "there"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(here.root / ".git"), str(there_root / ".git")], check=True
    )
    there = RunRegistry.open(there_root, create=False)
    record.status = "succeeded"
    there.finish_run(record)  # finished there
    here.update_run(record.run_id, last_checkpoint={"step": 2, "path": "/c"})  # still running here
    result = here.pull(str(there_root))
    assert result["updated_runs"] == [record.run_id]
    assert here.load_run(record.run_id)["run"]["status"] == "succeeded"
    back = there.pull(str(here.root))  # the other way: their running state never wins over the finished one
    assert there.load_run(record.run_id)["run"]["status"] == "succeeded" and back["updated_runs"] == []
    _fsck_clean(here.root)


def test_a_lock_left_by_a_killed_writer_is_cleared_at_once_and_a_live_writers_lock_is_not(registry):
    git_dir = registry.root / ".git"
    notes = git_dir / processes.WRITERS
    notes.mkdir(exist_ok=True)
    (notes / "live.json").write_text(json.dumps(processes.identity()))
    lock = git_dir / "refs" / "heads" / "main.lock"
    lock.write_text(registry.head + "\n")
    try:
        check_registry_ready(registry.root, wait=0)
    except Exception as error:  # a live writer may own it: waited for, never removed
        assert str(lock) in str(error)
    assert lock.exists()
    (notes / "live.json").unlink()
    (notes / "dead.json").write_text(json.dumps({"host": processes.host(), "pid": _dead_pid()}))
    os.utime(lock)  # made while the dead writer's note was in place
    assert check_registry_ready(registry.root, wait=0) == [lock]
    assert not lock.exists() and not list(notes.iterdir())
    registry.commit_run(make_record(registry))


_LIFE = """
import sys
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import make_record
registry = RunRegistry.open(sys.argv[1], create=False)
record = make_record(registry, status="running")
registry.start_run(record)
registry.update_run(record.run_id, last_checkpoint={"step": 1, "path": "/c"})
record.status = "succeeded"
registry.finish_run(record)
print(record.run_id)
"""


def test_8_concurrent_runs_and_8_concurrent_tags_of_one_name(registry):
    first = make_record(registry)
    registry.commit_run(first)
    root = str(registry.root)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    runs = [subprocess.Popen([sys.executable, "-c", _LIFE, root], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(8)]  # fmt: skip
    tags = [subprocess.Popen([sys.executable, "-m", "ftkit", "tag", first.run_id, "best", "--registry", root],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]  # fmt: skip
    ids = []
    for proc in runs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        ids.append(out.strip())
    for proc in tags:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    fresh = RunRegistry.open(registry.root, create=False)
    statuses = {s["id"]: s["status"] for s in fresh.summaries()}
    assert sorted(ids) == sorted(set(statuses) - {first.run_id})
    assert set(statuses.values()) == {"succeeded"}
    assert fresh.tags() == {"best": first.run_id}
    assert git(registry, "ls-tree", "--name-only", "main", "tags/").split() == ["tags/best"]
    _fsck_clean(registry.root)
    result = CliRunner().invoke(app, ["runs", "--json", "--registry", root])
    assert json.loads(result.stdout)["total"] == 9
