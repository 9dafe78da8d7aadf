"""examples/ci/pipeline.sh end to end on the tiny model, against a local bare git remote: a first run becomes the
baseline, a run within a loose gate passes and takes the tag, a run past an impossible gate fails with exit 1 and
is not tagged. The registry's contents are read back from the bare remote with git itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_recipe

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "ci" / "pipeline.sh"
FTKIT = str(Path(sys.executable).with_name("ftkit"))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _pipeline(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _remote_runs(remote: Path) -> list[str]:
    """Run folders on the remote's main branch (the registry's branch), read with git (not ftkit)."""
    files = _git("-C", str(remote), "ls-tree", "-r", "--name-only", "refs/heads/main").split()
    return sorted({name.split("/")[1] for name in files if name.startswith("runs/") and name.count("/") >= 2})


def _tagged(ftkit_env: dict[str, str], cwd: Path, tag: str) -> list[str]:
    listing = subprocess.run(
        [FTKIT, "runs", "--tag", tag, "--json"],
        env=ftkit_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return [run["id"] for run in json.loads(listing.stdout)["runs"]]


def test_pipeline_baseline_pass_and_failing_gate(tmp_path, tiny_model_dir, chat_data):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    recipe.write_text(recipe.read_text().replace("max_steps: 12", "max_steps: 2"))
    remote = tmp_path / "shared-registry.git"
    _git("init", "--bare", "--quiet", str(remote))
    env = {
        **os.environ,
        "RECIPE": str(recipe),
        "REGISTRY": str(tmp_path / "ci-registry"),
        "REMOTE": str(remote),
        "BASELINE_TAG": "baseline",
        "FTKIT": FTKIT,
        "OMP_NUM_THREADS": "1",
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@example.invalid",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@example.invalid",
    }
    # A second checkout that only ever pulls: what another CI job sees through the remote.
    reader = {**env, "FTKIT_REGISTRY": str(tmp_path / "reader-registry")}

    first = _pipeline({**env, "GATE": "eval.loss>+0.5"}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "becomes the baseline" in first.stderr
    assert "eval.loss" not in first.stdout  # no baseline yet, so no diff ran
    runs = _remote_runs(remote)
    assert len(runs) == 1
    subprocess.run(
        [FTKIT, "registry", "pull", str(remote)], env=reader, cwd=tmp_path, check=True, capture_output=True
    )
    assert _tagged(reader, tmp_path, "baseline") == runs

    # The same recipe again: eval loss within +100 of the baseline's.
    second = _pipeline({**env, "GATE": "eval.loss>+100"}, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "eval.loss" in second.stdout and "gate(s) failed" not in second.stderr  # the diff ran and passed
    runs_after_second = _remote_runs(remote)
    assert len(runs_after_second) == 2
    (new_run,) = set(runs_after_second) - set(runs)
    subprocess.run(
        [FTKIT, "registry", "pull", str(remote)], env=reader, cwd=tmp_path, check=True, capture_output=True
    )
    assert _tagged(reader, tmp_path, "baseline") == [new_run]

    # Eval loss is positive, so it can never drop 1000 below the baseline's: `eval.loss>-1000` must trip.
    third = _pipeline({**env, "GATE": "eval.loss>-1000"}, tmp_path)
    assert third.returncode == 1, third.stderr
    assert "gate(s) failed" in third.stderr  # exit 1 from the gate itself, not from another step
    runs_after_third = _remote_runs(remote)
    assert len(runs_after_third) == 3  # the rejected run is still recorded and shared
    subprocess.run(
        [FTKIT, "registry", "pull", str(remote)], env=reader, cwd=tmp_path, check=True, capture_output=True
    )
    assert _tagged(reader, tmp_path, "baseline") == [new_run]
