"""Scores of a model on preference pairs, base vs tuned:

- `preference_accuracy`: the share of pairs whose chosen answer has the higher log-probability under the model
  (summed over the answer's tokens, given the prompt), ties counting as misses;
- `logp_margin`: the mean of log p(chosen) − log p(rejected), in nats;
- from the objective's own evaluation (TRL's `evaluate()` on the same pairs): `loss`, and for DPO `reward_margin` and
  `reward_accuracy` — the implicit rewards β·(log π − log π_ref), which are 0 for the base model (it is the
  reference).

Pairs are the trainer's prepared rows — DPO's `prompt_ids`, `chosen_ids`, `rejected_ids` (cut to `max_length` the
way TRL's collator cuts them, keeping the start), or ORPO/CPO's `<side>_input_ids` with `<side>_labels` — so both
views score the same tokens.
"""

from __future__ import annotations

from typing import Any


def pair_logps(
    model: Any, rows: Any, pad_id: int, max_length: int | None, batch_size: int, device: str
) -> tuple[list[float], list[float]]:
    """Summed log-probabilities of each pair's chosen and rejected answer given its prompt."""
    import torch

    sequences: list[tuple[list[int], int]] = []
    for row in rows:
        for side in ("chosen", "rejected"):
            if f"{side}_ids" in row:  # DPO's rows: the prompt and each answer apart
                prompt = list(row["prompt_ids"])
                ids, start = (prompt + list(row[f"{side}_ids"]))[: max_length or None], len(prompt)
            else:  # ORPO/CPO's rows: the whole sequence, the prompt's labels at -100
                ids, labels = list(row[f"{side}_input_ids"]), list(row[f"{side}_labels"])
                start = next((i for i, label in enumerate(labels) if label != -100), len(labels))
            sequences.append((ids, max(start, 1)))
    sums: list[float] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for first in range(0, len(sequences), batch_size):
            batch = sequences[first : first + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in batch], device=device)
            mask = torch.tensor(
                [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device
            )
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
            for index, (ids, start) in enumerate(batch):
                sums.append(float(logp[index, start - 1 : len(ids) - 1].sum()))
    if was_training:
        model.train()
    return sums[0::2], sums[1::2]


def preference_scores(chosen: list[float], rejected: list[float]) -> dict[str, float]:
    """preference_accuracy and logp_margin of per-pair log-probabilities."""
    if not chosen:
        return {}
    wins = sum(1 for c, r in zip(chosen, rejected, strict=True) if c > r)
    margin = sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
    return {"preference_accuracy": wins / len(chosen), "logp_margin": margin}


def evaluate_preference(
    trainer: Any, model: Any, tokenizer: Any, batch_size: int, device: str
) -> dict[str, float]:
    """Every preference score of `model` on the trainer's prepared eval pairs (the objective's loss included)."""
    rows = trainer.eval_dataset
    if rows is None or len(rows) == 0:
        return {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    chosen, rejected = pair_logps(model, rows, pad, trainer.args.max_length, batch_size, device)
    scores = preference_scores(chosen, rejected)
    found = trainer.evaluate()
    scores["loss"] = float(found["eval_loss"])
    for key, name in (
        ("eval_rewards/margins", "reward_margin"),
        ("eval_rewards/accuracies", "reward_accuracy"),
    ):
        if key in found:
            scores[name] = float(found[key])
    scores["pairs"] = float(len(chosen))
    return scores
