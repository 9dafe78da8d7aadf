"""env.json: versions without importing packages, the code commit and dirty flag, no environment variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ftkit.registry.environment import collect_environment


def test_collect_environment_in_a_git_repo(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_ShouldNeverAppear123456")
    repo = tmp_path / "proj"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "train.py").write_text("print(1)\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = collect_environment(7, {"device": "cpu"}, repo)
    assert result["seed"] == 7 and result["hardware"] == {"device": "cpu"}
    assert result["code"]["commit"] == head and result["code"]["dirty"] is False
    assert result["packages"]["ftkit"] and "bitsandbytes" in result["packages"]
    assert result["python"].count(".") == 2 and result["cpu_count"] >= 1
    assert "hf_ShouldNeverAppear" not in json.dumps(result)
    (repo / "train.py").write_text("print(2)\n")
    assert collect_environment(None, None, repo)["code"]["dirty"] is True


def test_outside_a_repo(tmp_path):
    assert collect_environment(None, None, tmp_path)["code"]["commit"] is None


def test_does_not_import_torch():
    code = (
        "import sys; from ftkit.registry.environment import collect_environment; collect_environment(1);"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
