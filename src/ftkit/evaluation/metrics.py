"""Evaluation metrics computed by one loop for base and tuned models, so the two are comparable."""

from __future__ import annotations

import math
from typing import Any

from ftkit.data.render import IGNORE_INDEX


def _batches(items: list[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Padded tokens (rows x longest row) per evaluation batch: the activations of one forward pass scale with it, and
# the loss itself never holds more than `chunked_loss.CHUNK_BYTES` of logits.
EVAL_MAX_TOKENS = 4096


def token_batches(examples: list[dict[str, list[int]]], max_tokens: int) -> list[list[dict[str, list[int]]]]:
    """`examples` grouped, longest first, into batches of at most `max_tokens` padded tokens (rows x longest row;
    a longer row is a batch of its own)."""
    ordered = sorted(examples, key=lambda example: len(example["input_ids"]), reverse=True)
    batches: list[list[dict[str, list[int]]]] = []
    for example in ordered:
        if batches and (len(batches[-1]) + 1) * len(batches[-1][0]["input_ids"]) <= max_tokens:
            batches[-1].append(example)
        else:
            batches.append([example])
    return batches


def causal_lm_loss(
    model: Any,
    examples: list[dict[str, list[int]]],
    pad_token_id: int,
    max_tokens: int = EVAL_MAX_TOKENS,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean cross-entropy over labelled tokens (labels != -100), and its perplexity.

    Examples are dicts with `input_ids` and `labels`, scored in batches of at most `max_tokens` padded tokens.
    Tokens are weighted equally across the whole set. The loss is computed in chunks over the labelled positions
    only (`ftkit.evaluation.chunked_loss`); models it does not apply to get the full logits.
    """
    import torch

    from ftkit.evaluation.chunked_loss import chunked_head

    model.eval()
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad(), chunked_head(model) as chunked:
        for batch in token_batches(examples, max_tokens):
            length = max(len(example["input_ids"]) for example in batch)
            ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
            labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(batch), length), dtype=torch.long)
            for row, example in enumerate(batch):
                n = len(example["input_ids"])
                ids[row, :n] = torch.tensor(example["input_ids"])
                labels[row, :n] = torch.tensor(example["labels"])
                mask[row, :n] = 1
            # The first label is never a target; prompt tuning would score it from its last virtual token
            labels[:, 0] = IGNORE_INDEX
            inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "use_cache": False}
            if chunked:
                output = model(**inputs, labels=labels.to(device), fused_lm_head=True)
                total_loss -= output.log_probs.sum().item()
                total_tokens += int(output.label_mask.sum().item())
                continue
            logits = model(**inputs).logits
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
