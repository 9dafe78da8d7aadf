"""`evaluation.select_best`: keep the trainable weights of the best evaluation during training, and put them back
at the end so the saved output and the tuned evaluation are that step's.

The weights are copied into CPU memory, into buffers allocated at the first evaluation and overwritten in place at
each better one: only the trainable parameters (an adapter's few MB; everything for full fine-tuning), since frozen
ones never change. A copy in memory costs one pass over those bytes, where a staged folder on disk costs a
serialisation and a write of the same bytes plus a read back; for full fine-tuning it costs the model's size in RAM
once. The earliest step wins a tie; a NaN score never wins.
"""

from __future__ import annotations

import math
from typing import Any

from ftkit.errors import RecipeError
from ftkit.recipe.eval_checks import metric_higher_is_better


class BestCheckpoint:
    """Called after each evaluation during training with (step, scores, model); keeps the best step's weights."""

    def __init__(self, metric: str):
        self.metric = metric
        self.name = metric.removeprefix("eval.")
        higher = metric_higher_is_better(metric)
        if higher is None:  # the recipe check refuses these; a direct caller gets the same message
            raise RecipeError(
                f"evaluation.select_best: cannot tell whether a higher or lower {metric} is better"
            )
        self.higher = higher
        self.state: dict[str, Any] = {}
        self.step: int | None = None
        self.value: float | None = None
        self.scores: list[tuple[int, float]] = []  # every evaluation's value, for the event

    def __call__(self, step: int, scores: dict[str, Any], model: Any) -> None:
        if self.name not in scores:
            measured = ", ".join(f"eval.{key}" for key in sorted(scores) if key != "tokens")
            raise RecipeError(
                f"evaluation.select_best: {self.metric} is not measured by the evaluation during training "
                f"(it measures {measured or 'nothing'})",
                hint="choose one of those metrics, or add the metric to the recipe's evaluation",
            )
        value = float(scores[self.name])
        self.scores.append((step, value))
        if math.isnan(value):
            return
        if self.value is None or (value > self.value if self.higher else value < self.value):
            self.step, self.value = step, value
            self.keep(model)

    def keep(self, model: Any) -> None:
        """Copy `model`'s trainable parameters into the CPU buffers (allocated once, then overwritten)."""
        import torch

        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not parameter.requires_grad:
                    continue
                saved = self.state.get(name)
                if saved is None:
                    self.state[name] = parameter.detach().to("cpu", copy=True)
                else:
                    saved.copy_(parameter.detach())

    def restore(self, model: Any, final_step: int) -> bool:
        """Load the best step's weights back into `model`; False when nothing is kept or the model already holds
        them (the best step is the last one trained)."""
        if not self.state or self.step == final_step:
            return False
        import torch

        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, saved in self.state.items():
                parameters[name].copy_(saved.to(parameters[name].device))
        return True

    def metrics(self) -> dict[str, Any]:
        """`train.best_step` and `train.best_<metric>` (dots as underscores), once an evaluation has scored."""
        if self.step is None:
            return {}
        return {"train.best_step": self.step, f"train.best_{self.metric.replace('.', '_')}": self.value}

    def describe(self, final_step: int) -> str:
        """Which step won and why, for the run's events."""
        if self.step is None:
            return f"select_best: no evaluation scored {self.metric}; the output is the last step's ({final_step})"
        better = "higher" if self.higher else "lower"
        others = ", ".join(f"step {step}: {value:.6g}" for step, value in self.scores)
        kept = (
            "the saved output and the tuned evaluation are that step's weights"
            if self.step != final_step
            else "it is the last step, so the output is unchanged"
        )
        return (
            f"best checkpoint: step {self.step} of {final_step} had the best {self.metric} ({self.value:.6g}; "
            f"{better} is better; {others}); {kept}"
        )
