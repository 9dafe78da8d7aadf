"""From checked run data to the rows a model trains on: the task's fit to the data, class labels, and token ids
with loss labels, counting every row that is truncated or dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ftkit.data.render import render_example
from ftkit.errors import DataError

if TYPE_CHECKING:
    from ftkit.data.dataset import RunData


@dataclass
class EncodedRows:
    """Token rows (`input_ids` and `labels`) for training and evaluation, with what encoding cost.

    Counts are of train rows: `truncated_rows` were cut to max_seq_len (`truncated_tokens` lost, rows kept),
    `dropped_rows` had no trainable token left and were left out. Eval rows with no trainable token are left out
    too (they carry no loss), uncounted.
    """

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    truncated_rows: int = 0
    truncated_tokens: int = 0
    dropped_rows: int = 0
    warnings: list[str] = field(default_factory=list)
    skip_metrics: dict[str, int] = field(default_factory=dict)  # RunData.skip_metrics(): rows skipped at load

    def metrics(self) -> dict[str, int]:
        """The counts as run metrics (`data.*`)."""
        return {
            **self.skip_metrics,
            "data.truncated_rows": self.truncated_rows,
            "data.truncated_tokens": self.truncated_tokens,
            "data.dropped_rows": self.dropped_rows,
            "data.train_rows": len(self.train),
            "data.eval_rows": len(self.eval),
        }


def check_task_format(task: str, data: RunData) -> None:
    """Raise a DataError when the data's format cannot train the recipe's task."""
    if task == "classification" and data.format != "classification":
        raise DataError(
            f"task is classification but the data is in {data.format} format ({data.format_reason})",
            hint="give rows with `text` and `label`, or map columns with data.columns",
        )
    if task == "causal-lm" and data.format in ("classification", "preference"):
        raise DataError(
            f"task is causal-lm but the data is in {data.format} format ({data.format_reason})",
            hint="set task: classification"
            if data.format == "classification"
            else "set task: preference (DPO on the chosen/rejected pairs; README: Preference tuning)",
        )
    if task == "preference" and data.format != "preference":
        raise DataError(
            f"task is preference but the data is in {data.format} format ({data.format_reason})",
            hint="give rows with `prompt`, `chosen` and `rejected` (strings or message lists), or map columns with "
            "data.columns; for SFT on this data use task: causal-lm",
        )


def class_labels(data: RunData) -> list[Any]:
    """The classification labels, sorted (a label's index is its class id); every eval label must be among them."""
    labels = sorted({example.data["label"] for example in data.train}, key=str)
    unknown = sorted({str(e.data["label"]) for e in data.eval if e.data["label"] not in labels})
    if unknown:
        raise DataError(
            f"eval labels not seen in train: {', '.join(unknown)}",
            hint="every eval label needs training examples",
        )
    return labels


def encode_rows(
    data: RunData,
    tokenizer: Any,
    *,
    max_seq_len: int,
    train_on: str = "completion",
    labels: list[Any] | None = None,
) -> EncodedRows:
    """Tokenize train and eval rows. With `labels` (classification) a row is its `text` and the index of its
    label; without, a row is rendered through the chat template with its loss mask (`train_on`)."""
    encoded = EncodedRows([], [], skip_metrics=data.skip_metrics())
    skipped = data.skip_warning()
    if skipped:  # rows the data check refused, left out under data.skip_invalid_rows: reported with the rest
        encoded.warnings.append(skipped)
    for split, examples in (("train", data.train), ("eval", data.eval)):
        out = encoded.train if split == "train" else encoded.eval
        for example in examples:
            if labels is not None:
                ids = tokenizer(example.data["text"], truncation=False, add_special_tokens=True)["input_ids"]
                cut = max(0, len(ids) - max_seq_len)
                item = {"input_ids": ids[:max_seq_len], "labels": labels.index(example.data["label"])}
            else:
                result = render_example(example.data, tokenizer, max_seq_len, train_on)
                cut = result.truncated_tokens
                item = {"input_ids": result.input_ids, "labels": result.labels}
                if result.trained_tokens == 0:
                    if split == "train":
                        encoded.dropped_rows += 1
                    continue
            if cut and split == "train":
                encoded.truncated_rows += 1
                encoded.truncated_tokens += cut
            out.append(item)
    if encoded.truncated_rows:
        encoded.warnings.append(
            f"{encoded.truncated_rows} train rows longer than max_seq_len={max_seq_len} were "
            f"truncated ({encoded.truncated_tokens} tokens lost)"
        )
    if encoded.dropped_rows:
        encoded.warnings.append(
            f"{encoded.dropped_rows} train rows had no trainable tokens after truncation and were dropped"
        )
    return encoded
