"""Evaluation metrics computed by one loop for base and tuned models, so the two are comparable."""

from __future__ import annotations

import math
from typing import Any

from ftkit.data.render import IGNORE_INDEX


def _batches(items: list[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def causal_lm_loss(
    model: Any,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    batch_size: int = 8,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean cross-entropy over labelled tokens (labels != -100), and its perplexity.

    Examples are dicts with `input_ids` and `labels`. Tokens are weighted equally across the whole set.
    """
    import torch

    model.eval()
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for batch in _batches(examples, batch_size):
            length = max(len(example["input_ids"]) for example in batch)
            ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(batch), length), dtype=torch.long)
            for row, example in enumerate(batch):
                n = len(example["input_ids"])
                ids[row, :n] = torch.tensor(example["input_ids"])
                labels[row, :n] = torch.tensor(example["labels"])
                mask[row, :n] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            logits = logits[:, -length:]  # prompt tuning prepends its virtual tokens' logits
            shift_logits = logits[:, :-1, :].float()
            shift_labels = labels[:, 1:].to(device)
            loss = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.size(-1)),
                shift_labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
            total_loss += loss.item()
            total_tokens += int((shift_labels != IGNORE_INDEX).sum().item())
    if total_tokens == 0:
        return {}
    mean = total_loss / total_tokens
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": total_tokens}


def classification_metrics(
    model: Any, examples: list[dict[str, Any]], pad_token_id: int, batch_size: int = 16, device: str = "cpu"
) -> dict[str, float]:
    """Accuracy and mean cross-entropy for sequence classification examples (`input_ids`, `labels`)."""
    outputs = classification_outputs(model, examples, pad_token_id, batch_size, device)
    if not outputs["targets"]:
        return {}
    correct = sum(p == t for p, t in zip(outputs["predicted"], outputs["targets"], strict=True))
    return {"loss": outputs["loss"], "accuracy": correct / len(outputs["targets"])}


def classification_outputs(
    model: Any, examples: list[dict[str, Any]], pad_token_id: int, batch_size: int = 16, device: str = "cpu"
) -> dict[str, Any]:
    """What a classifier makes of `examples` (`input_ids`, `labels`): `loss` (mean cross-entropy over rows),
    `predicted` (each row's highest-logit label id) and `targets` (each row's true label id), in row order.
    The input of `ftkit.evaluation.scoring.classification_report`."""
    import torch

    model.eval()
    predicted: list[int] = []
    targets: list[int] = []
    total_loss = 0.0
    with torch.no_grad():
        for batch in _batches(examples, batch_size):
            length = max(len(example["input_ids"]) for example in batch)
            ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), length), dtype=torch.long)
            for row, example in enumerate(batch):
                n = len(example["input_ids"])
                ids[row, :n] = torch.tensor(example["input_ids"])
                mask[row, :n] = 1
            target = torch.tensor([example["labels"] for example in batch], device=device)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            total_loss += torch.nn.functional.cross_entropy(logits, target, reduction="sum").item()
            predicted.extend(int(value) for value in logits.argmax(-1).tolist())
            targets.extend(int(value) for value in target.tolist())
    return {"loss": total_loss / len(targets) if targets else 0.0, "predicted": predicted, "targets": targets}
