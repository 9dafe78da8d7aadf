"""Concurrent `ftkit tag` processes moving one tag: every commit's "(was X)" is the target in its parent commit,
and what each process reports as `previous` is what its commit really replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.registry.conftest import git

PROCESSES = 15
_SCRIPT = """
import sys, time
from pathlib import Path
from ftkit.cli.app import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
sys.argv = ["ftkit", *sys.argv[2:]]
main()
"""


def _target(registry: Path, revision: str) -> str | None:
    """The run tags/prod points at in `revision` (None when the tag file is not there)."""
    proc = subprocess.run(
        ["git", "--git-dir", str(registry / ".git"), "show", f"{revision}:tags/prod"],
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout)["run"] if proc.returncode == 0 else None


def test_fifteen_racing_tag_moves_each_name_the_target_they_replaced(registry, add_run, tmp_path):
    runs = [add_run() for _ in range(3)]
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(go), "tag", runs[i % 3], "prod", "--json"]
            + ["--registry", str(registry.root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(PROCESSES)
    ]
    time.sleep(2.0)  # let the interpreters import ftkit, so the moves race; not an assertion
    go.touch()
    results = [(proc.wait(timeout=300), *proc.communicate()) for proc in procs]
    assert [code for code, _, _ in results] == [0] * PROCESSES, [err for _, _, err in results]
    reports = [json.loads(out) for _, out, _ in results]

    commits = git(registry, "log", "--format=%H", "main", "--", "tags/prod").split()
    assert commits, "no tag commit was made"
    replaced = []
    for commit in commits:
        subject = git(registry, "log", "-1", "--format=%s", commit).strip()
        target, before = _target(registry.root, commit), _target(registry.root, f"{commit}^")
        assert target != before, f"{commit} moved nothing: {subject}"
        assert subject == f"tag prod -> {target}" + (f" (was {before})" if before else ""), commit
        replaced.append((before, target))
    # Processes that found the tag already on their run made no commit; the others made one each, and each
    # reported the target its own commit replaced.
    moved = [(r["previous"], r["run"]) for r in reports if r["previous"] != r["run"]]
    assert Counter(moved) == Counter(replaced)
    registry.snapshot(fresh=True)
    assert registry.tags()["prod"] == _target(registry.root, "main")
