"""The facts a review's rules read, gathered once from a run (a `RunRegistry.load_run` dict, or the same shape
built before the run is committed), and the ready commands they suggest."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from ftkit.review.series import finite, number, points, setting

# Methods that train every weight (or whole layers): they need far more rows than an adapter to generalise.
FULL_WEIGHT_METHODS = ("full", "freeze")
LORA_FAMILY = ("lora", "qlora", "dora")


@dataclass
class Facts:
    """One run's numbers, as the rules read them."""

    run_id: str
    status: str
    method: str
    task: str
    resolved: dict[str, Any]
    metrics: dict[str, Any]
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss), non-finite kept
    grad_norm: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, eval loss) measured during training
    epochs: list[tuple[int, float]] = field(default_factory=list)  # (step, epoch reached)
    data: dict[str, Any] = field(default_factory=dict)
    auto: dict[str, Any] = field(
        default_factory=dict
    )  # run.json's `auto`: dotted key -> {value, rule, evidence}

    @classmethod
    def of(cls, run: dict[str, Any]) -> Facts:
        """The facts of `run` (keys: id, run, resolved, metrics, history, data)."""
        info = run.get("run") or {}
        resolved = run.get("resolved") or {}
        method = info.get("method") or setting(resolved, "method", "name") or "?"
        history = run.get("history") or []
        return cls(
            run_id=str(run.get("id") or info.get("id") or ""),
            status=str(info.get("status") or "succeeded"),
            method=str(method),
            task=str(info.get("task") or resolved.get("task") or "causal-lm"),
            resolved=resolved,
            metrics=run.get("metrics") or {},
            train=points(history, "loss"),
            grad_norm=points(history, "grad_norm"),
            evals=points(history, "eval_loss"),
            epochs=points(history, "epoch"),
            data=run.get("data") or {},
            auto=info.get("auto") if isinstance(info.get("auto"), dict) else {},
        )

    def metric(self, key: str) -> float | None:
        """A finite metric, or None."""
        return finite(self.metrics.get(key))

    def raw_metric(self, key: str) -> float | None:
        """A metric as a float, non-finite kept, or None."""
        return number(self.metrics.get(key))

    def chose_auto(self, key: str) -> bool:
        """True when the dotted `key` (e.g. training.learning_rate) was `auto` in the run's recipe."""
        return key in self.auto

    def training(self, key: str) -> Any:
        """A resolved `training.*` value."""
        return setting(self.resolved, "training", key)

    @property
    def learning_rate(self) -> float | None:
        return finite(self.training("learning_rate"))

    @property
    def steps(self) -> int:
        """Optimizer steps the run took (metrics, else the last logged step)."""
        steps = self.metric("train.steps")
        if steps is not None:
            return int(steps)
        return max((step for step, _ in self.train), default=0)

    def rows(self, role: str) -> int | None:
        """Rows of the `train` or `eval` data as read (data.json), else as encoded (metrics)."""
        item = self.data.get(role)
        if isinstance(item, dict) and isinstance(item.get("rows"), int):
            return item["rows"]
        value = self.metric(f"data.{role}_rows")
        return int(value) if value is not None else None

    def rerun(self, *changes: tuple[str, Any]) -> str:
        """`ftkit rerun RUN --set KEY=VALUE ...` for this run."""
        parts = ["ftkit", "rerun", self.run_id]
        for key, value in changes:
            parts += ["--set", f"{key}={value_text(value)}"]
        return shlex.join(parts)

    def longer_run(self, factor: float) -> tuple[str, Any]:
        """The `--set` change that makes the run `factor` times longer (or shorter): `max_steps` when it capped
        the run, else `epochs`."""
        max_steps = self.training("max_steps")
        if isinstance(max_steps, int) and max_steps and self.steps >= max_steps:
            return "training.max_steps", max(1, round(max_steps * factor))
        epochs = finite(self.training("epochs")) or 1.0
        return "training.epochs", max(0.01, round(epochs * factor, 2))


def value_text(value: Any) -> str:
    """A `--set` value: floats in short form that YAML and the recipe loader read back (1e-05, 0.25)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return f"{value:.1f}"
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return str(value)
