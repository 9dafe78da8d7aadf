"""Sharing a registry through a git remote: push, pull, divergent histories merge without conflicts."""

from __future__ import annotations

import subprocess

import pytest

from ftkit.errors import RegistryError
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record


def _add(reg: RunRegistry, **kw) -> str:
    record = make_record(reg, **kw)
    reg.commit_run(record)
    return record.run_id


@pytest.fixture
def remote(tmp_path):
    path = tmp_path / "shared.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def test_two_machines_merge_runs_and_tags(tmp_path, remote):
    alice = RunRegistry.open(tmp_path / "alice")
    bob = RunRegistry.open(tmp_path / "bob")
    assert bob.pull(str(remote))["result"] == "remote-empty"
    a1 = _add(alice)
    alice.set_remote("origin", str(remote))
    assert alice.push()["result"] == "pushed"
    assert bob.pull(str(remote))["new_runs"] == [a1]  # unrelated histories merge
    b1 = _add(bob, loss=1.0)
    a2 = _add(alice, loss=0.9)
    alice.tag(a2, "production")
    bob.tag(b1, "production")  # moved later on bob: bob's move wins everywhere
    bob.tag(b1, "bob-only")
    alice.push()
    result = bob.push(str(remote))  # rejected first, pulls (merges) and pushes again
    assert result["result"] == "pushed" and result["merged_runs"] == [a2]
    pulled = alice.pull("origin")
    assert pulled["result"] == "fast-forward" and pulled["new_runs"] == [b1]
    for reg in (alice, bob):
        assert {r["id"] for r in reg.list_runs()} == {a1, a2, b1}
        assert reg.tags() == {"production": b1, "bob-only": b1}
        fsck = subprocess.run(
            ["git", "--git-dir", str(reg.root / ".git"), "fsck", "--strict"], capture_output=True
        )
        assert fsck.returncode == 0
    remote_head = subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "main"], capture_output=True, text=True
    )
    assert alice.head == bob.head == remote_head.stdout.strip()
    merges = git(bob, "rev-list", "--merges", "main").split()
    assert merges  # a real merge commit, not a rewrite
    assert alice.pull("origin")["result"] == "up-to-date"


def test_pull_refuses_foreign_or_newer_remote(tmp_path):
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", "-b", "main", str(other)], check=True)
    (other / "x").write_text("x")
    subprocess.run(["git", "-C", str(other), "add", "x"], check=True)
    subprocess.run(
        ["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
    )
    reg = RunRegistry.open(tmp_path / "reg")
    before = reg.head
    with pytest.raises(RegistryError, match="not an ftkit registry"):
        reg.pull(str(other))
    assert reg.head == before


def test_push_to_unknown_remote_is_a_clear_error(registry):
    with pytest.raises(RegistryError, match="no remote named 'nowhere'; set one with"):
        registry.push("nowhere")
