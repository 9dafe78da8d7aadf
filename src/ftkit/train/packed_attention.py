"""Padding-free attention whose cost is linear in the batch: one causal attention per packed sequence.

A padding-free batch (TRL's `padding_free=True`) is one row of concatenated sequences whose position_ids restart at
0. transformers' sdpa path turns that into a dense block-diagonal boolean mask over the whole flattened row, so
attention time and memory grow with (total tokens)²; this module registers an attention implementation that splits
the row at its sequence boundaries instead and runs sdpa with `is_causal=True` on each sequence, and a mask function
that builds no mask for such a row. Every other input (padded batches with a mask, generation with a KV cache, a
single sequence) goes through transformers' own sdpa path unchanged, so evaluation and generation are unaffected.
Where the device has a varlen kernel (CUDA with `flash_attn`), transformers' "flash_attention_2" is used instead: it
already splits at position_ids.

The implementation is switched on only for training (`training_attention`) and the model's own implementation is
put back afterwards; transformers never writes it to config.json, so saved output reloads in plain transformers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from typing import Any

PACKED_ATTENTION = "ftkit_packed_sdpa"
VARLEN_ATTENTION = "flash_attention_2"

_registered = False
# The boundaries of the last packed row seen: every layer gets the same position_ids tensor, so they are found once
# per forward (and once more per recomputation), not once per layer.
_last_split: tuple[Any, list[int]] | None = None


def sequence_lengths(position_ids: Any) -> list[int]:
    """Lengths of the sequences packed in one row of `position_ids` (shape (1, L) or (L,)): a sequence starts where
    the position does not follow the previous one by 1 (0 after the end of a sequence, as TRL's collator writes)."""
    import torch

    row = position_ids.reshape(-1)
    starts = torch.ones_like(row, dtype=torch.bool)
    starts[1:] = row[1:] != row[:-1] + 1
    cuts = torch.nonzero(starts).reshape(-1).tolist() + [row.numel()]
    return [end - start for start, end in zip(cuts[:-1], cuts[1:], strict=True)]


def _packed_lengths(query: Any, key: Any, attention_mask: Any, position_ids: Any) -> list[int] | None:
    """The packed sequences' lengths when this call is a packed row without a mask or cache, else None."""
    global _last_split
    if attention_mask is not None or position_ids is None or query.shape[0] != 1:
        return None
    if query.shape[2] != key.shape[2] or position_ids.shape[-1] != query.shape[2]:
        return None  # a KV cache (generation, prefix keys): not a packed training row
    if _last_split is not None and _last_split[0] is position_ids:
        lengths = _last_split[1]
    else:
        lengths = sequence_lengths(position_ids)
        _last_split = (position_ids, lengths)
    return lengths if len(lengths) > 1 else None


def packed_sdpa_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function signature and output layout ((batch, q_len, heads, head_dim), None).

    A packed row (batch 1, no mask, no cache, several sequences in position_ids) runs transformers' sdpa once per
    sequence with a causal mask and no dense mask (GQA handled as sdpa handles it); anything else is transformers'
    `sdpa_attention_forward` itself."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lengths = _packed_lengths(query, key, attention_mask, kwargs.get("position_ids"))
    if lengths is None:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    outputs, start = [], 0
    for length in lengths:
        end = start + length
        output, _ = sdpa_attention_forward(
            module,
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
        outputs.append(output)
        start = end
    return torch.cat(outputs, dim=1), None


def packed_sdpa_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: Any = 0,
    kv_offset: Any = 0,
    attention_mask: Any = None,
    allow_is_causal_skip: bool = True,
    **kwargs: Any,
) -> Any:
    """The mask function paired with `packed_sdpa_attention_forward`: None (no mask at all) for a packed row, which
    transformers signals by forbidding the causal skip on a batch of one without a padding mask or cache; otherwise
    transformers' `sdpa_mask` unchanged."""
    from transformers.masking_utils import sdpa_mask

    no_cache = q_length == kv_length and _is_zero(q_offset) and _is_zero(kv_offset)
    if attention_mask is None and batch_size == 1 and no_cache and not allow_is_causal_skip:
        return None
    return sdpa_mask(
        batch_size=batch_size,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        attention_mask=attention_mask,
        allow_is_causal_skip=allow_is_causal_skip,
        **kwargs,
    )


def _is_zero(offset: Any) -> bool:
    return isinstance(offset, int) and offset == 0


def register() -> str:
    """Register the packed attention and its mask function with transformers (once); returns its name."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention_forward)
        AttentionMaskInterface.register(PACKED_ATTENTION, packed_sdpa_mask)
        _registered = True
    return PACKED_ATTENTION


def choose_attention(device: str, precision: str, has_varlen_kernel: bool | None = None) -> str:
    """The padding-free attention for a device: transformers' flash_attention_2 (a varlen kernel) on CUDA with
    `flash_attn` installed and half-precision compute (the kernel has no fp32), else the per-sequence sdpa."""
    if has_varlen_kernel is None:
        has_varlen_kernel = find_spec("flash_attn") is not None
    if device == "cuda" and has_varlen_kernel and precision in ("bf16", "fp16"):
        return VARLEN_ATTENTION
    return PACKED_ATTENTION


def packed_attention_applies(config: Any) -> bool:
    """Whether the per-sequence path keeps this model exact: it replaces sdpa attention with full causal attention
    per sequence, so a model with a sliding window in effect keeps transformers' own masks."""
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if getattr(config, "sliding_window", None) is not None and getattr(config, "use_sliding_window", True):
        return False
    return all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or [])


def attention_note(name: str) -> str:
    """What the run says about the padding-free attention it trains with."""
    how = "varlen kernel" if name == VARLEN_ATTENTION else "sdpa"
    return f"padding-free attention: {name} ({how}: attends per sequence, no mask over the whole batch)"


@contextmanager
def training_attention(model: Any, padding_free: bool, device: str, precision: str) -> Iterator[str | None]:
    """While training with padding-free batches, `model` (a PEFT model or a plain one) attends per sequence; its own
    attention implementation is put back on exit, also after an error. Yields the implementation used, or None
    where nothing changed (padded batches, or a model the per-sequence path does not keep exact)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    original = getattr(base.config, "_attn_implementation", None)
    if not padding_free or not packed_attention_applies(base.config):
        yield None
        return
    name = choose_attention(device, precision)
    if name == PACKED_ATTENTION:
        register()
    base.set_attn_implementation(name)
    try:
        yield name
    finally:
        base.set_attn_implementation(original)
