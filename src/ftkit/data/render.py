"""Rendering canonical examples into token ids and labels, with the loss mask made explicit.

Labels are -100 where no loss is taken. With `train_on="completion"` (the default) only completion tokens,
assistant turns or output tokens carry loss; `train_on="all"` trains on every token. Chat rendering uses the
tokenizer's chat template, the same one saved with the model, so inference formats prompts identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftkit.data.formats import as_sft

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy (and so every trainer) skips: no loss on this token
# Text beyond max_seq_len * this many characters is cut before tokenizing: real tokens average 3-5 characters, so
# the kept tokens never change, and one huge row cannot take seconds and gigabytes to tokenize.
MAX_CHARS_PER_TOKEN = 32
MIN_CHAR_LIMIT = 65_536  # rows shorter than this are always tokenized whole, so their counts stay exact


def char_limit(max_seq_len: int) -> int:
    """Characters of a row's text that are tokenized; the rest is cut first (it lies past max_seq_len)."""
    return max(max_seq_len * MAX_CHARS_PER_TOKEN, MIN_CHAR_LIMIT)


# Used when a tokenizer has none (base models, tiny test tokenizers); ChatML, as SmolLM2 and Qwen use.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class RenderedExample:
    input_ids: list[int]
    labels: list[int]
    truncated_tokens: int = 0  # tokens cut off by max_seq_len (counted in the text kept by the character cap)
    truncated_chars: int = 0  # characters cut before tokenizing, beyond char_limit(max_seq_len)

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template the default one. Returns True if it was added."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return True


def prompt_text(example: dict[str, Any], tokenizer: Any) -> str:
    """The text a model sees before it should answer (for generation and exact-match evaluation)."""
    if "messages" in example:
        messages = example["messages"][:-1]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return example.get("prompt", "")


def reference_text(example: dict[str, Any]) -> str:
    """The answer the model should produce for `prompt_text`."""
    if "messages" in example:
        return example["messages"][-1]["content"]
    return example.get("completion", "")


def _spans_for_chat(messages: list[dict[str, str]], tokenizer: Any) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant reply."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        if text.startswith(through) and through.startswith(before):
            end = len(through)
            while end > len(before) and through[end - 1].isspace():  # the newline after the end token
                end -= 1
            spans.append((len(before), end))
        else:  # template is not prefix-stable: fall back to locating the reply's content
            start = text.find(message["content"], spans[-1][1] if spans else 0)
            if start >= 0:
                spans.append((start, start + len(message["content"])))
    return text, spans


def render_example(
    example: dict[str, Any], tokenizer: Any, max_seq_len: int, train_on: str = "completion"
) -> RenderedExample:
    """Tokenize one canonical causal-LM example (text, completion or messages) with its loss mask."""
    eos = tokenizer.eos_token or ""
    if "messages" in example:
        text, spans = _spans_for_chat(example["messages"], tokenizer)
    elif "completion" in example:
        prompt = example["prompt"]
        text = prompt + example["completion"] + eos
        spans = [(len(prompt), len(text))]
    else:
        text = example["text"] + eos
        spans = [(0, len(text))]
    limit = char_limit(max_seq_len)
    truncated_chars = max(0, len(text) - limit)
    text = text[:limit]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    offsets = list(encoded["offset_mapping"])
    wants_bos = tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False)
    if wants_bos and (not input_ids or input_ids[0] != tokenizer.bos_token_id):
        input_ids.insert(0, tokenizer.bos_token_id)
        offsets.insert(0, (0, 0))
    if train_on == "all":
        labels = list(input_ids)
    else:
        labels = [
            token
            if any(start <= offset[0] < end for start, end in spans) and offset[1] > offset[0]
            else IGNORE_INDEX
            for token, offset in zip(input_ids, offsets, strict=True)
        ]
    truncated = max(0, len(input_ids) - max_seq_len)
    return RenderedExample(input_ids[:max_seq_len], labels[:max_seq_len], truncated, truncated_chars)


def render_text(example: dict[str, Any], train_on: str = "completion") -> tuple[str, list[tuple[int, int]]]:
    """The text of a canonical example and the character spans that carry loss, without any tokenizer.

    Chat renders with the default ChatML template (what ftkit uses when a tokenizer has none); a trained span
    covers an assistant reply and its `<|im_end|>`, as with a tokenizer. Used for estimates and previews when
    no model is given.
    """
    if "messages" in example:
        parts, spans, position = [], [], 0
        for message in example["messages"]:
            header = f"<|im_start|>{message['role']}\n"
            body = f"{message['content']}<|im_end|>"
            if message["role"] == "assistant":
                spans.append((position + len(header), position + len(header) + len(body)))
            parts.append(header + body + "\n")
            position += len(parts[-1])
        text = "".join(parts)
    elif "completion" in example:
        text = example["prompt"] + example["completion"]
        spans = [(len(example["prompt"]), len(text))]
    elif "chosen" in example:  # preference: the chosen reply after its prompt
        return render_text(as_sft(example, "chosen"), train_on)
    else:
        text = example.get("text", "")
        spans = [(0, len(text))]
    return text, ([(0, len(text))] if train_on == "all" else spans)


def loss_mask_segments(rendered: RenderedExample, tokenizer: Any) -> list[tuple[str, bool]]:
    """Decoded runs of consecutive tokens with whether they carry loss, for showing what a model learns from."""
    segments: list[tuple[str, bool]] = []
    run: list[int] = []
    trained: bool | None = None
    for token, label in zip(rendered.input_ids, rendered.labels, strict=True):
        is_trained = label != IGNORE_INDEX
        if trained is not None and is_trained != trained:
            segments.append((tokenizer.decode(run), trained))
            run = []
        run.append(token)
        trained = is_trained
    if run:
        segments.append((tokenizer.decode(run), bool(trained)))
    return segments
