"""Fixtures for the registry tests: tmp registries filled through the API (no training), real git."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.registry.store import RunRecord, RunRegistry

_clock = itertools.count()


def git(registry: RunRegistry | Path, *args: str) -> str:
    """Run git against a registry's git directory and return stdout."""
    root = registry.root if isinstance(registry, RunRegistry) else Path(registry)
    proc = subprocess.run(["git", "--git-dir", str(root / ".git"), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def make_record(registry: RunRegistry, **overrides) -> RunRecord:
    """A plausible run record; `lr` and `loss` shortcuts set the resolved learning rate and eval loss."""
    lr = overrides.pop("lr", 1e-4)
    loss = overrides.pop("loss", 2.0)
    accuracy = overrides.pop("accuracy", 0.5)
    run_id = overrides.pop("run_id", None) or registry.new_run_id()
    start = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=next(_clock))
    fields = {
        "run_id": run_id,
        "name": registry.new_run_name(run_id),
        "status": "succeeded",
        "method": "lora",
        "model": "tiny-llama",
        "task": "causal-lm",
        "config_hash": "sha256:" + "0" * 64,
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=42)).isoformat(),
        "recipe_text": f"model: tiny-llama\ndata:\n  train: data/train.jsonl\ntraining:\n  learning_rate: {lr}\n",
        "resolved": {
            "name": None,
            "model": "tiny-llama",
            "data": {"train": "/abs/data/train.jsonl", "format": "chat"},
            "method": {"name": "lora", "r": 8},
            "training": {"learning_rate": lr, "epochs": 1, "batch_size": 8},
            "output": f"/abs/outputs/{run_id}",
        },
        "metrics": {"eval": {"loss": loss, "accuracy": accuracy}, "train": {"tokens_per_sec": 1000.0}},
        "history": [{"step": 1, "loss": loss + 1}, {"step": 2, "loss": loss + 0.5}],
        "events": [{"type": "start"}, {"type": "end"}],
        "env": {"packages": {"torch": "2.4.0", "transformers": "4.56.0"}, "python": "3.11.0", "seed": 42},
        "data": {"train": {"path": "/abs/data/train.jsonl", "sha256": "a" * 64, "rows": 100}},
    }
    fields.update(overrides)
    return RunRecord(**fields)


@pytest.fixture
def registry(tmp_path: Path) -> RunRegistry:
    """An empty registry in a tmp folder."""
    reg = RunRegistry.open(tmp_path / "registry")
    yield reg
    reg.close()


@pytest.fixture
def add_run(registry: RunRegistry) -> Callable[..., str]:
    """Commit a fake run through the API; returns its id."""

    def add(**overrides) -> str:
        record = make_record(registry, **overrides)
        registry.commit_run(record)
        return record.run_id

    return add


@pytest.fixture
def cli(registry: RunRegistry, monkeypatch: pytest.MonkeyPatch):
    """Invoke ftkit in-process against the fixture registry (via FTKIT_REGISTRY)."""
    monkeypatch.setenv("FTKIT_REGISTRY", str(registry.root))
    monkeypatch.setenv("COLUMNS", "200")
    from ftkit.cli.app import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
