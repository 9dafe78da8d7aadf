"""Token statistics of checked examples: counts, lengths and their histogram, truncation, time per epoch.

Counted with the model's tokenizer when there is one, through its call interface and the same rendering training
uses (so truncation and trained tokens match a run); estimated from characters without one. No torch import.
"""

from __future__ import annotations

import math
from typing import Any

from ftkit.data.formats import Example, as_sft
from ftkit.data.readers import RowProblem
from ftkit.data.render import char_limit, ensure_chat_template, render_example, render_text

DEFAULT_MAX_SEQ_LEN = 512  # the recipe's training.max_seq_len default
CHARS_PER_TOKEN = 4  # the estimate used without a tokenizer (English text with a BPE tokenizer)
ASSUMED_TOKENS_PER_SEC = 2000
TIME_ASSUMPTION = (
    f"assumes ~{ASSUMED_TOKENS_PER_SEC:,} tokens/s (LoRA on a ~0.5B model, one recent GPU); bigger models, "
    "full fine-tuning or a CPU are slower. `ftkit run` measures the real train.tokens_per_sec"
)


def _lengths(example: dict[str, Any], tokenizer: Any, max_len: int, train_on: str) -> tuple[int, int, int]:
    """(tokens in the whole example, tokens carrying loss after truncation to max_len, characters cut before
    tokenizing). With characters cut, the token total counts only the kept text (a lower bound)."""
    if tokenizer is None:
        text, spans = render_text(example, train_on)
        total = math.ceil(len(text) / CHARS_PER_TOKEN)
        cutoff = max_len * CHARS_PER_TOKEN
        kept = sum(max(0, min(end, cutoff) - start) for start, end in spans)
        return total, math.ceil(kept / CHARS_PER_TOKEN), 0
    if "label" in example:
        text = example["text"]
        limit = char_limit(max_len)
        total = len(tokenizer(text[:limit], add_special_tokens=True)["input_ids"])
        return total, min(total, max_len), max(0, len(text) - limit)
    if "chosen" in example:
        pairs = [
            render_example(as_sft(example, k), tokenizer, max_len, train_on) for k in ("chosen", "rejected")
        ]
        longest = max(pairs, key=lambda r: len(r.input_ids) + r.truncated_tokens)
        return (
            len(longest.input_ids) + longest.truncated_tokens,
            min(r.trained_tokens for r in pairs),
            max(r.truncated_chars for r in pairs),
        )
    rendered = render_example(example, tokenizer, max_len, train_on)
    return (
        len(rendered.input_ids) + rendered.truncated_tokens,
        rendered.trained_tokens,
        rendered.truncated_chars,
    )


def token_stats(
    path: str, examples: list[Example], tokenizer: Any, max_len: int, train_on: str
) -> tuple[dict[str, Any], list[RowProblem]]:
    """Token counts, the length distribution and histogram, truncation and time per epoch over `examples`,
    counted with `tokenizer` or estimated from characters without one; plus a located warning for each row
    longer than `max_len` and an error for each row the tokenizer cannot render. No statistics (an empty dict)
    when no row renders."""
    stats: dict[str, Any] = {}
    problems: list[RowProblem] = []
    if not examples:
        return stats, problems
    template = None
    if tokenizer is not None and any(
        "messages" in e.data or isinstance(e.data.get("prompt"), list) for e in examples[:1]
    ):
        template = (
            "default ChatML (the tokenizer has none)" if ensure_chat_template(tokenizer) else "the model's"
        )
    lengths: list[int] = []
    parts: dict[str, list[int]] = {"prompt": [], "chosen": [], "rejected": []}
    truncated_rows = truncated_tokens = dropped = trained_total = char_capped_rows = 0
    for example in examples:
        try:
            total, trained, cut_chars = _lengths(example.data, tokenizer, max_len, train_on)
            if "chosen" in example.data:
                for name, count in zip(parts, pair_lengths(example.data, tokenizer, max_len), strict=True):
                    parts[name].append(count)
        except Exception as error:  # e.g. a chat template that rejects this conversation's roles
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            problems.append(
                RowProblem(
                    path,
                    example.line,
                    f"the tokenizer or chat template cannot render this row: {type(error).__name__}: {first}",
                    code="render-failed",
                )
            )
            continue
        lengths.append(total)
        trained_total += trained
        estimate = "" if tokenizer is not None else " (estimated)"
        if total > max_len:
            truncated_rows += 1
            truncated_tokens += total - max_len
            message = (
                f"{total:,} tokens{estimate}, longer than max_seq_len={max_len}: "
                f"{total - max_len:,} tokens would be truncated"
            )
            if cut_chars:
                char_capped_rows += 1
                message += (
                    f" (counted in the first {char_limit(max_len):,} characters; "
                    f"{cut_chars:,} more were cut before tokenizing)"
                )
            if trained == 0 and "label" not in example.data:
                dropped += 1
                message += ", leaving nothing to train on, so the row would be dropped"
            problems.append(RowProblem(path, example.line, message, severity="warning", code="too-long"))
    if not lengths:
        return stats, problems
    ordered = sorted(lengths)
    per_epoch = sum(min(length, max_len) for length in lengths)
    stats.update(
        {
            "tokens": sum(lengths),
            "tokens_estimated": tokenizer is None,
            "token_count": "the model's tokenizer"
            if tokenizer is not None
            else f"estimated as characters / {CHARS_PER_TOKEN} (pass --model for exact counts)",
            "chat_template": template,
            "trained_tokens": trained_total,
            "length": _summary(ordered),
            "histogram": histogram(lengths),
            "truncated_rows": truncated_rows,
            "truncated_tokens": truncated_tokens,
            "char_capped_rows": char_capped_rows,
            "dropped_rows": dropped,
            "tokens_per_epoch": per_epoch,
            "time_per_epoch_s": round(per_epoch / ASSUMED_TOKENS_PER_SEC, 1),
            "time_assumes": TIME_ASSUMPTION,
        }
    )
    if parts["prompt"]:
        stats["preference"] = {
            "counted": PAIR_COUNTING,
            **{name: {"tokens": sum(counts), **_summary(sorted(counts))} for name, counts in parts.items()},
        }
    return stats, problems


PAIR_COUNTING = (
    "as TRL's DPO trainer splits a pair: the prompt alone (message lists through the chat template, with the "
    "generation prompt), each answer as the tokens of prompt + answer (+ EOS for plain strings) after the prefix "
    "they share with the prompt"
)
_GENERATION_PROMPT = "<|im_start|>assistant\n"  # what the default ChatML template adds before an answer


def pair_lengths(example: dict[str, Any], tokenizer: Any, max_len: int) -> tuple[int, int, int]:
    """Tokens of a preference pair's prompt, chosen and rejected answers (see PAIR_COUNTING); estimated as
    characters / CHARS_PER_TOKEN of the same texts (default ChatML for message lists) without a tokenizer."""
    prompt = example["prompt"]
    if tokenizer is None:
        if isinstance(prompt, list):
            head = len(render_text({"messages": prompt}, "all")[0]) + len(_GENERATION_PROMPT)
            answers = [len(render_text(as_sft(example, k), "all")[0]) - head for k in ("chosen", "rejected")]
        else:
            head, answers = len(prompt), [len(example["chosen"]), len(example["rejected"])]
        return math.ceil(head / CHARS_PER_TOKEN), *(math.ceil(max(0, n) / CHARS_PER_TOKEN) for n in answers)
    limit = char_limit(max_len)
    if isinstance(prompt, list):
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        texts = [
            tokenizer.apply_chat_template(prompt + example[k], tokenize=False) for k in ("chosen", "rejected")
        ]
        special = False  # the template writes the special tokens itself
    else:
        eos = tokenizer.eos_token or ""
        prompt_text, special = prompt, True
        texts = [
            prompt + example[k] + ("" if not eos or example[k].endswith(eos) else eos)
            for k in ("chosen", "rejected")
        ]
    prompt_ids = tokenizer(prompt_text[:limit], add_special_tokens=special)["input_ids"]
    full = [tokenizer(text[:limit], add_special_tokens=special)["input_ids"] for text in texts]
    shared = min(_common_prefix(prompt_ids, ids) for ids in full)
    return shared, len(full[0]) - shared, len(full[1]) - shared


def _common_prefix(first: list[int], second: list[int]) -> int:
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


def _summary(ordered: list[int]) -> dict[str, Any]:
    """min, mean, median, p95 and max of sorted lengths."""
    return {
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "median": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
        "max": ordered[-1],
    }


def histogram(lengths: list[int], bins: int = 10) -> list[dict[str, int]]:
    """Equal-width bins with a round width (1, 2 or 5 times a power of ten) covering 0..max."""
    if not lengths:
        return []
    top = max(lengths)
    raw = max(1.0, top / bins)
    magnitude = 10 ** math.floor(math.log10(raw))
    width = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    width = int(max(1, width))
    first = min(lengths) // width
    counts = [0] * (top // width - first + 1)
    for length in lengths:
        counts[length // width - first] += 1
    return [
        {"from": (first + i) * width, "to": (first + i + 1) * width - 1, "rows": n}
        for i, n in enumerate(counts)
    ]
