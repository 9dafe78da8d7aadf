"""Evaluating a model on a run's eval rows: the same loop for the base and the tuned model, so they compare.

Shared by `ftkit run` (base and tuned) and anything that re-scores a saved run. Heavy libraries load inside the
metric and generation functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftkit.data.render import prompt_text, reference_text

if TYPE_CHECKING:
    from ftkit.recipe.schema import EvaluationConfig


@dataclass
class Evaluation:
    """One evaluation's results. `metrics` are flat numbers (`loss`, `exact_match`, `precision.<label>`, ...);
    `samples` the generated answers, each {prompt, reference, prediction, match, scores, extracted, failures}
    (see `ftkit.evaluation.scoring.score_generations`); `confusion` classification's confusion table
    ({"labels", "matrix"}: rows true labels, columns predicted), kept out of `metrics` because it is a table."""

    metrics: dict[str, float]
    samples: list[dict[str, Any]]
    confusion: dict[str, Any] | None = None


def evaluate(
    model: Any,
    tokenizer: Any,
    rows: list[dict],
    *,
    task: str,
    settings: EvaluationConfig,
    examples: list[dict[str, Any]],
    use_cache: bool = True,
    device: str = "cpu",
    labels: list[str] | None = None,
) -> Evaluation:
    """Every metric `settings.metrics` asks for (with the task's always-measured ones, see
    `ftkit.evaluation.scoring.resolve_metrics`) on encoded `rows` (the first `settings.max_rows`).

    Causal-lm: loss and perplexity from the loss loop; when `settings.generate` > 0, greedy answers for the first
    that many of `examples` (canonical eval rows), scored by the chosen generation metrics. Classification:
    loss, accuracy, and `macro_f1`, `precision.<label>`, `recall.<label>` when chosen, with the confusion table;
    `labels` name the class ids (default: the model config's id2label). `use_cache` is the method's
    `generation_use_cache`.
    """
    from ftkit.evaluation.metrics import causal_lm_loss, classification_outputs
    from ftkit.evaluation.scoring import classification_report, generation_metrics, resolve_metrics

    rows = rows[: settings.max_rows] if settings.max_rows else rows
    if not rows:
        return Evaluation({}, [])
    names = resolve_metrics(task, settings.metrics, settings.generate)
    if task == "classification":
        outputs = classification_outputs(model, rows, tokenizer.pad_token_id, settings.batch_size, device)
        report = classification_report(
            outputs["predicted"], outputs["targets"], labels or _label_names(model)
        )
        metrics = {"loss": outputs["loss"]}
        for key, value in report.items():
            if key.split(".")[0] in names and key != "confusion":
                metrics[key] = value
        return Evaluation(metrics, [], report["confusion"])
    scores = causal_lm_loss(model, rows, tokenizer.pad_token_id, device=device)
    metrics = {key: value for key, value in scores.items() if key in names}
    samples: list[dict[str, Any]] = []
    if settings.generate:
        samples = generate_samples(
            model,
            tokenizer,
            examples[: settings.generate],
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            use_cache=use_cache,
            device=device,
        )
        if samples and generation_metrics(names):
            metrics.update(
                score_samples(
                    samples,
                    names,
                    answer_regex=settings.answer_regex,
                    numeric_tolerance=settings.numeric_tolerance,
                )
            )
    return Evaluation(metrics, samples)


def evaluate_model(
    model: Any,
    tokenizer: Any,
    rows: list[dict],
    *,
    task: str,
    settings: EvaluationConfig,
    examples: list[dict[str, Any]],
    use_cache: bool = True,
    device: str = "cpu",
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """`evaluate(...)` as (metrics, samples): what `ftkit run` records for the base and the tuned model."""
    result = evaluate(
        model,
        tokenizer,
        rows,
        task=task,
        settings=settings,
        examples=examples,
        use_cache=use_cache,
        device=device,
    )
    return result.metrics, result.samples


def score_samples(
    samples: list[dict[str, Any]],
    names: list[str],
    *,
    answer_regex: str | None = None,
    numeric_tolerance: float = 1e-6,
) -> dict[str, float]:
    """Score `samples` (dicts with `prediction` and `reference`) with the generation metrics among `names`; each
    sample gains `scores`, `extracted`, `failures` and `match` (normalised exact match). Returns the aggregates."""
    from ftkit.evaluation.scoring import score_generations
    from ftkit.evaluation.scoring_text import normalize_answer

    aggregate, per_row = score_generations(
        names,
        [sample["prediction"] for sample in samples],
        [sample["reference"] for sample in samples],
        answer_regex=answer_regex,
        numeric_tolerance=numeric_tolerance,
    )
    for sample, row in zip(samples, per_row, strict=True):
        sample.update(row)
        sample["match"] = normalize_answer(sample["prediction"]) == normalize_answer(sample["reference"])
    return aggregate


def _label_names(model: Any) -> list[str]:
    """Class names from the model config's id2label, in id order (ids as text where it has none)."""
    config = getattr(model, "config", None)
    count = int(getattr(config, "num_labels", 0) or 0)
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(index, index)) for index in range(count)]


def generate_samples(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    use_cache: bool = True,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Greedy answers to each example's prompt, as {prompt, reference, prediction, match} (match: normalised exact
    match, `ftkit.evaluation.scoring_text.normalize_answer`)."""
    from ftkit.evaluation.generate import greedy_generate_batch
    from ftkit.evaluation.scoring_text import normalize_answer

    prompts = [prompt_text(example, tokenizer) for example in examples]
    predictions = greedy_generate_batch(
        model,
        tokenizer,
        prompts,
        max_new_tokens,
        use_cache=use_cache,
        device=device,
        batch_size=batch_size,
    )
    samples = []
    for example, prompt, prediction in zip(examples, prompts, predictions, strict=True):
        reference = reference_text(example)
        samples.append(
            {
                "prompt": prompt,
                "reference": reference,
                "prediction": prediction,
                "match": normalize_answer(prediction) == normalize_answer(reference),
            }
        )
    return samples
