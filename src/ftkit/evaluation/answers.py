"""What the models answered: the recipe's fixed prompts (`evaluation.prompts`) and the eval samples, as the rows a
run stores in the registry (`samples.jsonl`) and `ftkit diff` pairs.

A fixed prompt row: `{"kind": "prompt", "prompt": TEXT or [messages], "base": ..., "tuned": ..., "steps": {STEP:
...}}` (`steps`: the answers at each evaluation during training, when `evaluation.every_steps` is set). An eval
sample row: `{"kind": "eval", "prompt", "reference", "base", "tuned", "scores": {"base": {...}, "tuned": {...}}}`,
the per-row scores being whatever the evaluation reported for that row (exact match, extracted answers...).
Answers are greedy, through the method's generation path (`use_cache=method.generation_use_cache`).
"""

from __future__ import annotations

from typing import Any

TEXT_FIELDS = ("prompt", "reference", "prediction")


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    """A fixed prompt as chat messages: a string is one user message; a message list is kept (as plain dicts)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [
        message.model_dump() if hasattr(message, "model_dump") else {**message} for message in prompt or []
    ]


def prompt_value(prompt: Any) -> str | list[dict[str, str]]:
    """A fixed prompt as stored: the string itself, or its messages as plain dicts."""
    return prompt if isinstance(prompt, str) else prompt_messages(prompt)


class FixedPrompts:
    """The recipe's fixed prompts and each model's greedy answer to them, kept as registry rows (`self.rows`)."""

    def __init__(
        self,
        prompts: list[Any],
        tokenizer: Any,
        *,
        max_new_tokens: int,
        batch_size: int = 8,
        use_cache: bool = True,
        device: str = "cpu",
    ):
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.device = device
        self.rows: list[dict[str, Any]] = [{"kind": "prompt", "prompt": prompt_value(p)} for p in prompts]
        self.texts = [
            tokenizer.apply_chat_template(prompt_messages(p), tokenize=False, add_generation_prompt=True)
            for p in prompts
        ]

    def answer(self, model: Any, side: str | int) -> None:
        """Generate `model`'s answers and keep them as `side` ("base", "tuned") or as the answers at step `side`."""
        if not self.texts:
            return
        from ftkit.evaluation.generate import greedy_generate_batch

        answers = greedy_generate_batch(
            model,
            self.tokenizer,
            self.texts,
            self.max_new_tokens,
            use_cache=self.use_cache,
            device=self.device,
            batch_size=self.batch_size,
        )
        for row, answer in zip(self.rows, answers, strict=True):
            if isinstance(side, int):
                row.setdefault("steps", {})[str(side)] = answer
            else:
                row[side] = answer


def row_scores(sample: dict[str, Any]) -> dict[str, Any]:
    """The per-row scores of an evaluation sample: each metric's value (`scores`, flattened) and every other
    field that is not text (`match`, `extracted`, `failures`)."""
    fields = {key: value for key, value in sample.items() if key not in (*TEXT_FIELDS, "scores")}
    return {**(sample.get("scores") or {}), **fields}


def eval_rows(samples: list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    """Evaluation samples ({prompt, reference, prediction, ...}) as stored rows holding one side's answers."""
    return [
        {
            "kind": "eval",
            "prompt": sample["prompt"],
            "reference": sample["reference"],
            side: sample["prediction"],
            "scores": {side: row_scores(sample)},
        }
        for sample in samples
    ]


def add_side(rows: list[dict[str, Any]], samples: list[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    """`rows` with `side`'s answers and scores added (the same eval rows, in order); new rows when `rows` is empty."""
    if not rows:
        return eval_rows(samples, side)
    for row, sample in zip(rows, samples, strict=True):
        row[side] = sample["prediction"]
        row.setdefault("scores", {})[side] = row_scores(sample)
    return rows
