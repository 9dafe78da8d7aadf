"""The training half of a `task: preference` run (the runner's `_execute` hands over once the model is loaded and
the recipe resolved): the method's trainable part, the reference, the base evaluation on the eval pairs, training
with the same callbacks, checkpoints, trackers and graceful stop as SFT, the tuned evaluation and the saved output.

Reference (objective dpo): an adapter method's base with the adapter switched off (TRL's default for a PEFT model:
no second model in memory); for full and freeze a frozen copy of the loaded model made before training (its memory
is the model's size again; `reference: precompute` computes the reference log-probs once instead and keeps no copy).
"""

from __future__ import annotations

import copy
from typing import Any

from ftkit.evaluation.preference_scores import evaluate_preference
from ftkit.train.callbacks import GracefulStop, ProgressTracker, trainer_callback
from ftkit.train.preference_trainer import build_preference_trainer
from ftkit.train.run_io import save_output


def train_preference(
    run: Any,
    result: Any,
    model: Any,
    tokenizer: Any,
    train_rows: list[dict],
    eval_rows: list[dict],
    plan: Any,
    resolved: dict[str, Any],
) -> None:
    """Train `model` on the preference pairs and fill `result` and `run.metrics` (status, scores, history)."""
    from transformers import set_seed

    recipe, method = run.recipe, run.method
    settings = resolved["preference"]
    ref_model = None
    if settings["objective"] == "dpo" and settings["reference"] == "auto" and not method.is_adapter:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        run.event("note", "reference model: a frozen copy of the loaded model (full/freeze DPO)")
    set_seed(recipe.training.seed)
    model, trainable, total = run.prepare_method(model, "causal-lm")
    progress = trainer_callback(ProgressTracker, run.reporter)
    progress.on_row = run.progress_row
    stopper = trainer_callback(GracefulStop, run.reporter)
    trainer, truncation = build_preference_trainer(
        model, ref_model, tokenizer, train_rows, eval_rows, resolved, plan,
        [progress, stopper, *run.extra_callbacks], run.output_dir,
    )  # fmt: skip
    run.metrics.update(truncation.metrics())
    _report_truncation(run, truncation)
    batch = int(recipe.evaluation.batch_size)
    evaluation_seconds = 0.0
    if eval_rows and recipe.evaluation.compare_base and run.main_process:
        run.event("phase", "evaluating the base model on the eval pairs")
        trainer.remove_callback(progress)  # the base's scores are not a point of the training curve
        scores = evaluate_preference(trainer, trainer.model, tokenizer, batch, plan.device)
        trainer.add_callback(progress)
        run.metrics.update({f"base.eval.{key}": value for key, value in scores.items()})
    run.event(
        "phase",
        f"training {method.name} ({settings['objective']}"
        + (f", {settings['loss_type']} loss" if settings["objective"] == "dpo" else "")
        + f", beta {settings['beta']}): {trainable:,} of {total:,} parameters "
        f"({100 * trainable / total:.2f}%) on {plan.device}, {plan.precision}",
    )
    stopped = run.train_with(trainer, progress, stopper, result, resolved, lambda: evaluation_seconds)
    model = trainer.model
    if run.main_process:
        save_output(method, model, tokenizer, run.output_dir, resolved, None)
    if stopped:
        result.status = "interrupted"
        run.event("interrupt", f"interrupted at step {trainer.state.global_step}; saved to {run.output_dir}")
        run.write_metrics()
        return
    if eval_rows and run.main_process:
        run.event("phase", "evaluating the tuned model on the eval pairs")
        scores = evaluate_preference(trainer, model, tokenizer, batch, plan.device)
        run.metrics.update({f"eval.{key}": value for key, value in scores.items()})
    result.status = "succeeded"
    run.write_metrics()


def _report_truncation(run: Any, truncation: Any) -> None:
    """One warning per dataset whose pairs were cut or dropped, with the counts (as SFT reports truncation)."""
    for name, rows in truncation.rows.items():
        dropped = truncation.dropped.get(name, 0)
        prompts = truncation.prompts_cut.get(name, 0)
        answers = truncation.answers_cut.get(name, 0)
        parts = []
        if dropped:
            parts.append(f"{dropped} dropped (the prompt alone fills training.max_seq_len)")
        if prompts:
            parts.append(f"{prompts} prompts cut to their last preference.max_prompt_len tokens")
        if answers:
            parts.append(f"{answers} with an answer cut at training.max_seq_len")
        if parts:
            run.event("warning", f"{name} pairs: {rows} given; " + "; ".join(parts))
