"""Evaluating a model on a run's eval rows: the same loop for the base and the tuned model, so they compare.

Shared by `ftkit run` (base and tuned) and anything that re-scores a saved run. Heavy libraries load inside the
metric and generation functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftkit.data.render import prompt_text, reference_text

if TYPE_CHECKING:
    from ftkit.recipe.schema import EvaluationConfig


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
    """Eval metrics on encoded `rows` (the first `settings.max_rows`) and, when `settings.generate` is set,
    greedy samples for the first that many of `examples` (canonical eval rows) with their exact match.

    Classification gives accuracy and F1; causal-lm gives loss and perplexity, plus `exact_match` with samples.
    `use_cache` is the method's `generation_use_cache`.
    """
    from ftkit.evaluation.metrics import causal_lm_loss, classification_metrics

    rows = rows[: settings.max_rows] if settings.max_rows else rows
    if not rows:
        return {}, []
    if task == "classification":
        return classification_metrics(model, rows, tokenizer.pad_token_id, settings.batch_size, device), []
    scores = causal_lm_loss(model, rows, tokenizer.pad_token_id, settings.batch_size, device)
    scores.pop("tokens", None)
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
        scores["exact_match"] = sum(sample["match"] for sample in samples) / len(samples)
    return scores, samples


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
    """Greedy answers to each example's prompt, as {prompt, reference, prediction, match} (exact match)."""
    from ftkit.evaluation.generate import exact_match, greedy_generate_batch

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
                "match": exact_match(prediction, reference),
            }
        )
    return samples
