"""The evaluation parts of a run beyond the base and tuned scores: the evaluations during training
(`during_training` or `every_steps`), the best checkpoint (`select_best`) and the fixed prompts' answers
(`prompts`), wired together so the runner calls one object at each of its phases."""

from __future__ import annotations

from typing import Any

from ftkit.evaluation.answers import FixedPrompts
from ftkit.methods.base import Method
from ftkit.recipe.schema import Recipe
from ftkit.train.best_checkpoint import BestCheckpoint
from ftkit.train.callbacks import ProgressTracker, trainer_callback
from ftkit.train.periodic_eval import PERIODIC_MAX_ROWS, PeriodicEval


class RunEvaluation:
    """One run's fixed prompts, evaluations during training and best checkpoint."""

    def __init__(self, recipe: Recipe, method: Method, tokenizer: Any, device: str):
        self.recipe = recipe
        self.settings = recipe.evaluation
        self.method = method
        self.tokenizer = tokenizer
        self.device = device
        self.prompts = FixedPrompts(
            list(self.settings.prompts),
            tokenizer,
            max_new_tokens=self.settings.max_new_tokens,
            batch_size=self.settings.batch_size,
            use_cache=method.generation_use_cache,
            device=device,
        )
        self.best = BestCheckpoint(self.settings.select_best) if self.settings.select_best else None

    def base(self, model: Any) -> None:
        """The base model's answers to the fixed prompts (when the recipe compares with the base)."""
        if self.settings.compare_base:
            self.prompts.answer(model, "base")

    def periodic(self, progress: ProgressTracker, eval_rows: list[dict], examples: list[dict]) -> Any:
        """The trainer callback evaluating during training: `every_steps` runs the recipe's evaluation on the final
        evaluation's rows and answers the fixed prompts each time; otherwise `during_training` measures loss on at
        most PERIODIC_MAX_ROWS rows. The best checkpoint listens to both."""
        settings = self.settings
        every = settings.every_steps
        listeners: list[Any] = [self.best] if self.best else []
        measure = None
        rows = eval_rows[: min(settings.max_rows or PERIODIC_MAX_ROWS, PERIODIC_MAX_ROWS)]
        if every is not None:
            rows = eval_rows[: settings.max_rows] if settings.max_rows else eval_rows
            measure = lambda model: self.scores(model, rows, examples)  # noqa: E731
            listeners.append(lambda step, scores, model: self.prompts.answer(model, step))
        return trainer_callback(
            PeriodicEval,
            progress,
            rows,
            task=self.recipe.task,
            count=settings.during_training,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=settings.batch_size,
            device=self.device,
            every_steps=every,
            measure=measure,
            listeners=tuple(listeners),
        )

    def scores(self, model: Any, rows: list[dict], examples: list[dict]) -> dict[str, Any]:
        """The recipe's evaluation of `model` (the one the base and tuned models get), scores only."""
        from ftkit.evaluation.evaluate import evaluate_model

        scores, _ = evaluate_model(
            model,
            self.tokenizer,
            rows,
            task=self.recipe.task,
            settings=self.settings,
            examples=examples,
            use_cache=self.method.generation_use_cache,
            device=self.device,
        )
        return scores

    def finish(self, model: Any, final_step: int, event: Any) -> dict[str, Any]:
        """Put the best checkpoint back into `model` (select_best), say which step won, and return its metrics."""
        if self.best is None:
            return {}
        self.best.restore(model, final_step)
        event("best", self.best.describe(final_step), metric=self.best.metric, best_step=self.best.step)
        return self.best.metrics()
