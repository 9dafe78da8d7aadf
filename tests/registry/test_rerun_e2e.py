"""`ftkit run` then `ftkit rerun` for real (tiny model, a few steps): the registry holds both, with lineage."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry

pytestmark = pytest.mark.slow


def test_run_then_rerun_records_parent_and_diff(tmp_path, recipe_file, monkeypatch):
    registry = tmp_path / "registry"
    monkeypatch.setenv("FTKIT_REGISTRY", str(registry))
    monkeypatch.setenv("HF_TOKEN", "hf_E2eSecretNeverStored12345")
    runner = CliRunner()
    cheap = ["--set", "evaluation.compare_base=false", "--set", "evaluation.max_rows=4"]
    first = runner.invoke(app, ["run", str(recipe_file), "--set", "training.max_steps=1", *cheap, "--json"])
    assert first.exit_code == 0, first.output
    first_id = json.loads(first.stdout)["run_id"]

    dry = runner.invoke(app, ["rerun", first_id, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["status"] == "dry-run"

    second = runner.invoke(app, ["rerun", "@latest", "--set", "training.max_steps=2", "--json"])
    assert second.exit_code == 0, second.output
    second_id = json.loads(second.stdout)["run_id"]

    reg = RunRegistry.open(registry, create=False)
    loaded = reg.load_run(second_id)
    assert loaded["run"]["parent"] == first_id
    assert reg.load_run(first_id)["children"] == [second_id]
    assert loaded["run"]["name"] != reg.load_run(first_id)["run"]["name"]  # the rerun got its own name
    assert loaded["artifacts"] and all(reg.store.verify(a["sha256"]) for a in loaded["artifacts"])
    assert loaded["env"]["seed"] == 42 and loaded["data"]["train"]["rows"] == 64

    diff = runner.invoke(app, ["diff", first_id, second_id, "--json"])
    assert diff.exit_code == 0, diff.output
    assert [row["key"] for row in json.loads(diff.stdout)["config"]] == ["training.max_steps"]
    show = runner.invoke(app, ["show", second_id, "--json"])
    assert json.loads(show.stdout)["lineage"]["parent"]["id"] == first_id
    grep = [p for p in (registry / ".git").rglob("*") if p.is_file() and b"E2eSecret" in p.read_bytes()]
    assert grep == []
