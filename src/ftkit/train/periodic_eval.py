"""Eval loss measured a few times during training, so a run's history shows eval loss beside train loss.

Without it eval loss is known only before and after training, and a run whose eval loss rose in its second half
while train loss kept falling (overfitting) looks like any other. `evaluation.during_training` evaluations (default
4) run at evenly spaced optimizer steps, the last step included, on the first `PERIODIC_MAX_ROWS` eval rows (fewer
when `evaluation.max_rows` is smaller), with the same loss function as the base and tuned evaluations
(`ftkit.evaluation.metrics`), so the last point equals the final `eval.loss` when the eval set is that small.
Each point is a history row `{"step", "time_s", "eval_loss"}` (plus `eval_accuracy` for classification).
"""

from __future__ import annotations

import math
import time
from typing import Any

from ftkit.train.callbacks import ProgressTracker

# 200 rows keep four evaluations cheap next to training (a few forward passes each) while the mean loss over
# them is stable enough to see a rise of a few percent; `evaluation.max_rows` lowers it.
PERIODIC_MAX_ROWS = 200


def evaluation_steps(max_steps: int, count: int) -> list[int]:
    """The optimizer steps after which to evaluate: `count` evenly spaced steps ending at `max_steps`
    (fewer when the run has fewer steps than that), ascending and distinct."""
    if count <= 0 or max_steps <= 0:
        return []
    return sorted({max(1, math.ceil(k * max_steps / count)) for k in range(1, count + 1)})


class PeriodicEval:
    """Measures eval loss at `evaluation_steps(...)` and appends each point to `tracker.history`."""

    def __init__(
        self,
        tracker: ProgressTracker,
        rows: list[dict],
        *,
        task: str,
        count: int,
        pad_token_id: int,
        batch_size: int,
        device: str,
    ):
        self.tracker = tracker
        self.rows = rows
        self.task = task
        self.count = count if rows else 0
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        self.device = device
        self.steps: set[int] = set()
        self.done = 0
        self.seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps = set(evaluation_steps(state.max_steps, self.count))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step not in self.steps:
            return control
        started = time.perf_counter()
        scores = self.scores(model)
        model.train()  # the loss functions switch to eval mode (dropout off); training continues after this
        self.seconds += time.perf_counter() - started
        if scores:
            row = {"step": state.global_step, "time_s": round(started - self.tracker.started, 3)}
            row["eval_loss"] = float(scores["loss"])
            if "accuracy" in scores:
                row["eval_accuracy"] = float(scores["accuracy"])
            self.tracker.history.append(row)
            self.done += 1
        return control

    def scores(self, model: Any) -> dict[str, float]:
        """The eval scores of `model` on this callback's rows (the run's own loss functions)."""
        from ftkit.evaluation.metrics import causal_lm_loss, classification_metrics

        if self.task == "classification":
            return classification_metrics(model, self.rows, self.pad_token_id, self.batch_size, self.device)
        return causal_lm_loss(model, self.rows, self.pad_token_id, self.batch_size, self.device)

    def metrics(self) -> dict[str, Any]:
        """`train.*` metrics saying how many evaluations ran during training and what they cost."""
        return {
            "train.evals_during_training": self.done,
            "train.eval_rows_during_training": len(self.rows) if self.done else 0,
            "train.eval_seconds_during_training": round(self.seconds, 2),
        }
