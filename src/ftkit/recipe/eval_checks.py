"""Checks across the `evaluation` keys that one key's schema cannot make alone, each located at its key.

`every_steps` replaces `during_training` (both given is an error, not a silent choice); `select_best` needs an
evaluation during training and a metric that evaluation records, with a known direction; fixed `prompts` are
generated, so they need a causal-lm task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftkit.recipe.schema import Recipe

Problem = tuple[tuple[str, ...], str]

# What each kind of evaluation during training records, by task (without `eval.`). `every_steps` runs the same
# evaluation as the final one, so anything it records (generation metrics included) is checked at the first
# evaluation instead (train/best_checkpoint.py) when it is not among these.
LOSS_METRICS = {"causal-lm": ("loss", "perplexity"), "classification": ("loss", "accuracy")}


def metric_higher_is_better(metric: str) -> bool | None:
    """Whether a larger value of `metric` (`eval.loss`, `eval.exact_match`, ...) is better; None when unknown.
    The metric's own declaration (`ftkit.evaluation.scoring.METRICS`) wins; otherwise the name decides, as in
    `ftkit diff` (loss, perplexity: lower; accuracy, exact match, F1: higher)."""
    from ftkit.registry.diff import direction

    name = metric.removeprefix("eval.")
    try:
        from ftkit.evaluation.scoring import METRICS
    except ImportError:  # older layouts without declared metrics: the name alone decides
        METRICS = {}
    declared = None
    if isinstance(METRICS, dict):  # `precision.<label>` is declared as `precision`
        declared = METRICS.get(name) or METRICS.get(name.partition(".")[0])
    if declared is not None and hasattr(declared, "higher_is_better"):
        return bool(declared.higher_is_better)
    sign = direction(metric)
    return None if sign == 0 else sign > 0


def evaluation_problems(recipe: Recipe) -> list[Problem]:
    """(key path, message) for each contradiction among the `evaluation` keys of a validated recipe."""
    evaluation = recipe.evaluation
    problems: list[Problem] = []
    if evaluation.every_steps is not None and "during_training" in evaluation.model_fields_set:
        problems.append(
            (
                ("evaluation", "every_steps"),
                "give either `every_steps` or `during_training`, not both (every_steps evaluates the recipe's "
                "metrics on its own schedule; during_training measures eval loss at evenly spaced steps)",
            )
        )
    if evaluation.prompts and recipe.task != "causal-lm":
        problems.append(
            (
                ("evaluation", "prompts"),
                f"fixed prompts are answered by generation, which a {recipe.task} model does not do; "
                "remove `prompts` or use task: causal-lm",
            )
        )
    if evaluation.select_best is not None:
        problems += _select_best_problems(recipe)
    return problems


def _select_best_problems(recipe: Recipe) -> list[Problem]:
    evaluation = recipe.evaluation
    metric = str(evaluation.select_best)
    key = ("evaluation", "select_best")
    if evaluation.every_steps is None and evaluation.during_training == 0:
        return [
            (
                key,
                "there is no evaluation during training to choose from (during_training is 0 and every_steps "
                "is not set); set evaluation.every_steps (e.g. 50) or remove select_best",
            )
        ]
    if not metric.startswith("eval.") or metric == "eval.":
        return [(key, f"{metric!r} is not an eval metric; name one such as eval.loss or eval.exact_match")]
    name = metric.removeprefix("eval.")
    cheap = LOSS_METRICS.get(recipe.task, ("loss",))
    if evaluation.every_steps is None and name not in cheap:
        return [
            (
                key,
                f"during_training measures only {', '.join(f'eval.{m}' for m in cheap)}; set "
                f"evaluation.every_steps to measure {metric} as training goes",
            )
        ]
    if recipe.task == "causal-lm" and name not in cheap and not evaluation.generate:
        return [
            (
                key,
                f"{metric} is scored on generated answers, and evaluation.generate is 0; set evaluation.generate "
                "to the number of eval rows to answer (e.g. 32)",
            )
        ]
    if metric_higher_is_better(metric) is None:
        return [(key, f"cannot tell whether a higher or a lower {metric} is better; choose a known metric")]
    return []
