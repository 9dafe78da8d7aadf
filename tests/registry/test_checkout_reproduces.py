"""Version history that reproduces the run: for every way a run is made, `checkout` then `run` trains the same thing.

Real tiny runs (one optimizer step, no base evaluation). The config hash is the registry's fingerprint of what was
trained (the resolved recipe without name and output); overrides that were lost, or data paths that moved, change it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, write_jsonl

pytestmark = pytest.mark.slow

RECIPE = """\
# tiny demo: relative paths, comments and a blank line, as people write recipes
model: {model}   # a local folder, relative to this file
task: causal-lm
data:
  train: data/train.jsonl   # 64 rows
  eval: data/eval.jsonl
method:
  name: lora
  r: 8

training:
  max_steps: 1
  learning_rate: 1.0e-2   # try 5e-4
  batch_size: 8
  max_seq_len: 64
  seed: 42
evaluation:
  compare_base: false
  max_rows: 4
output: outputs/
"""


@pytest.fixture
def project(tmp_path, tiny_model_dir, monkeypatch):
    """A project folder with data and a recipe using relative paths; the registry lives elsewhere."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path / "project"
    write_jsonl(root / "data" / "train.jsonl", chat_rows(64, seed=1))
    write_jsonl(root / "data" / "eval.jsonl", chat_rows(16, seed=2))
    (root / "recipe.yaml").write_text(RECIPE.format(model=os.path.relpath(tiny_model_dir, root)))
    monkeypatch.setenv("FTKIT_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.chdir(root)
    yield root
    torch.set_num_threads(threads)


def ftkit(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run_hash(run_id: str) -> str:
    return ftkit("show", run_id)["run"]["config_hash"]


def checkout_and_run(run_id: str, target: Path) -> str:
    """Check `run_id` out to `target`, validate it, run it; the new run's config hash."""
    ftkit("checkout", run_id, "-o", str(target))
    assert CliRunner().invoke(app, ["validate", str(target)]).exit_code == 0
    return run_hash(ftkit("run", str(target))["run_id"])


def test_every_way_of_making_a_run_checks_out_to_the_same_config_hash(project):
    plain = ftkit("run", "recipe.yaml")["run_id"]
    typed = ["training.learning_rate=5e-4", "method.alpha=32"]  # one key in the file, one absent from it
    overridden = ftkit("run", "recipe.yaml", "--set", typed[0], "--set", typed[1])["run_id"]
    rerun = ftkit("rerun", overridden, "--set", "training.learning_rate=2e-3")["run_id"]
    hashes = {run_id: run_hash(run_id) for run_id in (plain, overridden, rerun)}
    assert len(set(hashes.values())) == 3  # each override changes what is trained, so a lost one shows
    assert ftkit("show", overridden)["overrides"] == typed
    assert ftkit("show", rerun)["overrides"] == ["training.learning_rate=2e-3"]

    assert checkout_and_run(plain, project / "plain.yaml") == hashes[plain]
    assert checkout_and_run(rerun, project / "rerun.yaml") == hashes[rerun]
    elsewhere = (
        project.parent / "elsewhere" / "back.yaml"
    )  # relative paths must still find the data and model
    assert checkout_and_run(overridden, elsewhere) == hashes[overridden]
    moved = ftkit("runs")["runs"][0]["id"]  # the run made from the recipe checked out to another folder
    assert checkout_and_run(moved, project.parent / "third" / "again.yaml") == hashes[overridden]
