"""Fixtures shared by the CLI tests: two runs with train and eval loss curves for the plot tests."""

from __future__ import annotations

import pytest

from ftkit.registry.store import RunRegistry
from tests.registry.conftest import make_record

TRAIN = [3.0, 2.5, 2.0, 1.5, 1.0, 0.5]  # train loss at steps 10..60; eval 2.2 at 30 and 1.1 at 60


@pytest.fixture
def plot_runs(tmp_path, monkeypatch):
    """Two runs with TRAIN and eval loss curves, the second shifted up by 1.0; returns (registry root, ids)."""
    registry = RunRegistry.open(tmp_path / "registry")
    monkeypatch.setenv("FTKIT_REGISTRY", str(registry.root))
    monkeypatch.setenv("COLUMNS", "200")
    ids = []
    with registry:
        for shift in (0.0, 1.0):
            history = [{"step": 10 * (i + 1), "loss": v + shift} for i, v in enumerate(TRAIN)]
            history += [{"step": 30, "eval_loss": 2.2 + shift}, {"step": 60, "eval_loss": 1.1 + shift}]
            record = make_record(registry, history=history)
            registry.commit_run(record)
            ids.append(record.run_id)
    return registry.root, ids
