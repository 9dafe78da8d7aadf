"""Eval loss measured a few times during training, so a run's history shows eval loss beside train loss.

Without it eval loss is known only before and after training, and a run whose eval loss rose in its second half
while train loss kept falling (overfitting) looks like any other. `evaluation.during_training` evaluations (default
4) run at evenly spaced optimizer steps, the last step included, on the first `PERIODIC_MAX_ROWS` eval rows (fewer
when `evaluation.max_rows` is smaller), with the same loss function as the base and tuned evaluations
(`ftkit.evaluation.metrics`), so the last point equals the final `eval.loss` when the eval set is that small.
Each point is a history row `{"step", "time_s", "eval_loss", ...}`: one `eval_<name>` per score (perplexity for
causal-lm, accuracy for classification).

`evaluation.every_steps: N` replaces that schedule: every N optimizer steps and at the last step (`epoch`: at the
end of each epoch), the recipe's own evaluation (`ftkit.evaluation.evaluate.evaluate_model`: loss and, with
`evaluation.generate`, the generation metrics) runs on the rows the final evaluation uses, so the best step's
scores are the ones the final evaluation reproduces after `select_best` (train/best_checkpoint.py). Listeners
(the best checkpoint, the fixed prompts' answers) run after each evaluation and count as evaluation time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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


def every_n_steps(max_steps: int, every: int) -> list[int]:
    """Every `every`-th optimizer step up to `max_steps`, and `max_steps` itself (ascending, distinct)."""
    if max_steps <= 0:
        return []
    return sorted({*range(every, max_steps + 1, every), max_steps})


Listener = Callable[[int, dict[str, Any], Any], None]  # (step, scores, model), after each evaluation


class PeriodicEval:
    """Evaluates at `evaluation_steps(...)` (or `every_n_steps`, or each epoch's end) and appends each point to
    `tracker.history`; `measure(model)` gives the scores (default: the loss functions on `rows`)."""

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
        every_steps: int | str | None = None,
        measure: Callable[[Any], dict[str, Any]] | None = None,
        listeners: tuple[Listener, ...] = (),
    ):
        self.tracker = tracker
        self.rows = rows
        self.task = task
        self.count = count if rows else 0
        self.pad_token_id = pad_token_id
        self.batch_size = batch_size
        self.device = device
        self.every_steps = every_steps if rows else None
        self.measure = measure or self.scores
        self.listeners = listeners
        self.steps: set[int] = set()
        self.evaluated: list[int] = []
        self.done = 0
        self.seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        if self.every_steps == "epoch":
            self.steps = set()  # on_epoch_end decides
        elif self.every_steps:
            self.steps = set(every_n_steps(state.max_steps, int(self.every_steps)))
        else:
            self.steps = set(evaluation_steps(state.max_steps, self.count))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and state.global_step in self.steps:
            self.evaluate(state.global_step, model)
        return control

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        stopped_early = control.should_training_stop and state.global_step < state.max_steps  # Ctrl-C
        due = self.every_steps == "epoch" and state.global_step not in self.evaluated
        if due and model is not None and not stopped_early:
            self.evaluate(state.global_step, model)
        return control

    def evaluate(self, step: int, model: Any) -> None:
        """Score `model` now, tell the listeners, and add the history row."""
        started = time.perf_counter()
        scores = self.measure(model)
        for listener in self.listeners if scores else ():
            listener(step, scores, model)
        model.train()  # evaluation switches to eval mode (dropout off); training continues after this
        self.seconds += time.perf_counter() - started
        self.evaluated.append(step)
        if scores:
            row: dict[str, Any] = {"step": step, "time_s": round(started - self.tracker.started, 3)}
            for name, value in scores.items():
                if name != "tokens" and isinstance(value, int | float) and not isinstance(value, bool):
                    row[f"eval_{name}"] = float(value)
            self.tracker.history.append(row)
            if self.tracker.on_row is not None:  # the live event log and the experiment trackers
                self.tracker.on_row(row)
            self.done += 1

    def scores(self, model: Any) -> dict[str, float]:
        """The eval scores of `model` on this callback's rows (the run's own loss functions)."""
        from ftkit.evaluation.metrics import causal_lm_loss, classification_metrics

        if self.task == "classification":
            return classification_metrics(model, self.rows, self.pad_token_id, self.batch_size, self.device)
        return causal_lm_loss(model, self.rows, self.pad_token_id, device=self.device)

    def metrics(self) -> dict[str, Any]:
        """`train.*` metrics saying how many evaluations ran during training and what they cost."""
        return {
            "train.evals_during_training": self.done,
            "train.eval_rows_during_training": len(self.rows) if self.done else 0,
            "train.eval_seconds_during_training": round(self.seconds, 2),
        }
