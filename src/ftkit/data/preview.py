"""The loss-mask preview: one example as text segments, each marked with whether the model learns from it."""

from __future__ import annotations

from typing import Any

from ftkit.data.formats import Example, as_sft
from ftkit.data.render import IGNORE_INDEX, loss_mask_segments, render_example, render_text


def preview(example: Example, tokenizer: Any, max_len: int, train_on: str) -> dict[str, Any]:
    """One example as segments of text with whether each carries loss: what the model learns from."""
    data = example.data
    if "label" in data:
        return {
            "line": example.line,
            "segments": [[data["text"], False]],
            "note": f"classification: the model learns to predict the label {data['label']!r} from this text",
        }
    note = None
    if "chosen" in data:
        note = "preference: the chosen reply is shown; the rejected one is scored against it (DPO)"
    if tokenizer is None:
        text, spans = render_text(data, train_on)
        segments, position = [], 0
        for start, end in spans:
            if start > position:
                segments.append([text[position:start], False])
            segments.append([text[start:end], True])
            position = end
        if position < len(text):
            segments.append([text[position:], False])
        return {"line": example.line, "segments": segments, "note": note, "by": "characters (no tokenizer)"}
    if "chosen" in data:
        data = as_sft(data, "chosen")
    rendered = render_example(data, tokenizer, max_len, train_on)
    return {
        "line": example.line,
        "segments": [[text, trained] for text, trained in loss_mask_segments(rendered, tokenizer)],
        "note": note,
        "by": "tokens",
        "trained_tokens": rendered.trained_tokens,
        "tokens": len(rendered.input_ids),
        "truncated_tokens": rendered.truncated_tokens,
        "ignore_index": IGNORE_INDEX,
    }
