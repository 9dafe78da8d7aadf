"""What one run produced (RunResult), in one process or assembled from a multi-process run's ranks (launch.py);
the caller summarises it and commits it to the registry (split from train/runner.py, which re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class RunResult:
    """What a run produced, ready to be summarised and committed to the registry."""

    run_id: str
    name: str
    status: str  # succeeded | failed | interrupted
    output_dir: str | None
    metrics: dict[str, Any]
    resolved: dict[str, Any]
    config_hash: str
    started_at: str
    ended_at: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    data_files: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)  # eval rows' answers (evaluation/answers.py)
    prompts: list[dict[str, Any]] = field(default_factory=list)  # the fixed prompts' answers
    error: str | None = None
    auto: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {value, rule, evidence}
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)  # tracker -> its run (ids, URLs)


def now_iso() -> str:
    """UTC now, to the second (a run's started_at / ended_at and its events' times)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
