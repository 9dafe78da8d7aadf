"""Next-token cross-entropy of a causal LM over its trained positions only, in token chunks: the
(batch, length, vocabulary) logits are never built.

The standard loss projects every position onto the whole vocabulary in fp32, then keeps the logits, their softmax
and their gradient. Here only the positions whose shifted label is not -100 are projected, `CHUNK_BYTES` of fp32
logits at a time (chunk tokens x vocabulary x 4 bytes), and the backward recomputes each chunk's logits instead of
keeping them. Under autocast the projection runs in the autocast dtype and the softmax in fp32, as in the standard
path; the LM-head weight (and bias) get a gradient only when they require one, accumulated over chunks in fp32.

TRL 1.16's SFTTrainer already routes its loss through a fused LM head (`trl.trainer.utils.add_fused_lm_head`:
`model(..., fused_lm_head=True)` returns per-token log-probabilities). Its kernel (`trl.kernels.chunked_logprob`)
is not used here: without Triton (any CPU) it scores every position, padding and prompt included, in fixed tiles of
4096 tokens x 32768 vocabulary entries with about eight fp32 temporaries of that size, and its token tile is a module
constant, so chunking the tokens outside it would allocate a full fp32 weight gradient per chunk. `install` wraps
TRL's fused forward (and `chunked_head` the model's own, for evaluation): where `unsupported` finds nothing against
it, a fused call runs this loss and returns TRL's `FusedCausalLMOutput` (the fields TRL's compute_loss and its
entropy / token-accuracy metrics read); otherwise the call goes to the forward it wrapped.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# fp32 logits of one chunk; the loss holds about three temporaries of this size at once (logits, probabilities,
# and logsumexp's own buffer)
CHUNK_BYTES = 64 * 2**20
IGNORE_INDEX = -100
ATTRIBUTES = ("forward", "_ftkit_chunk_bytes", "_ftkit_stats")  # what install sets on the causal model
# Config keys that change the logits after the LM head (TRL's fused head reads the same ones)
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


def chunk_tokens(vocab_size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Tokens per chunk so that one chunk's fp32 logits (tokens x `vocab_size` x 4 bytes) fit in `chunk_bytes`."""
    return max(1, chunk_bytes // (4 * vocab_size))


@functools.cache
def _function() -> Any:
    import torch

    class ChunkedNextToken(torch.autograd.Function):
        """(log-probability of each target, entropy, whether the target is the first argmax) of
        `hidden @ weight.T + bias`, `chunk` rows at a time. Entropy and top-1 carry no gradient."""

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, chunk, compute_dtype, stats=True):
            count = hidden.shape[0]
            log_probs = hidden.new_empty(count, dtype=torch.float32)
            entropy = torch.zeros_like(log_probs)
            top1 = torch.zeros(count, dtype=torch.bool, device=hidden.device)
            log_z = torch.empty_like(log_probs)
            w = weight.to(compute_dtype)
            b = None if bias is None else bias.to(compute_dtype)
            with torch.autocast(hidden.device.type, enabled=False):
                for start in range(0, count, chunk):
                    end = min(start + chunk, count)
                    logits = _project(hidden[start:end], w, b, compute_dtype)
                    target = targets[start:end].unsqueeze(1)
                    if stats:
                        top1[start:end] = logits.argmax(-1) == targets[start:end]
                    target_logit = logits.gather(1, target).squeeze(1)
                    log_z[start:end] = torch.logsumexp(logits, -1)
                    log_probs[start:end] = target_logit - log_z[start:end]
                    if stats:
                        log_p = logits.sub_(log_z[start:end].unsqueeze(1))  # in place: no second tile
                        entropy[start:end] = -log_p.exp().mul_(log_p).sum(-1)
            ctx.save_for_backward(hidden, weight, bias, targets, log_z)
            ctx.chunk, ctx.compute_dtype = chunk, compute_dtype
            ctx.mark_non_differentiable(entropy, top1)
            return log_probs, entropy, top1

        @staticmethod
        def backward(ctx, grad_log_probs, _grad_entropy, _grad_top1):
            hidden, weight, bias, targets, log_z = ctx.saved_tensors
            need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
            compute = ctx.compute_dtype
            w = weight.to(compute)
            b = None if bias is None else bias.to(compute)
            grad_hidden = torch.empty_like(hidden) if need_hidden else None
            grad_weight = (
                torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
            )
            grad_bias = (
                torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_bias else None
            )
            grad_log_probs = grad_log_probs.float()
            rows = torch.arange(min(ctx.chunk, hidden.shape[0]), device=hidden.device)
            for start in range(0, hidden.shape[0], ctx.chunk):
                end = min(start + ctx.chunk, hidden.shape[0])
                h = hidden[start:end].to(compute)
                # d log p_target / d z_j = 1[j = target] - p_j, scaled by the incoming gradient, all in place
                grad = _project(hidden[start:end], w, b, compute).sub_(log_z[start:end].unsqueeze(1)).exp_()
                g = grad_log_probs[start:end]
                grad.mul_(-g.unsqueeze(1))
                grad[rows[: end - start], targets[start:end]] += g
                grad = grad.to(compute)
                if grad_hidden is not None:
                    grad_hidden[start:end] = grad @ w
                if grad_weight is not None:
                    if compute == torch.float32:
                        grad_weight.addmm_(grad.t(), h)
                    else:
                        grad_weight.add_(grad.t() @ h)
                if grad_bias is not None:
                    grad_bias.add_(grad.sum(0, dtype=torch.float32))
            return (
                grad_hidden,
                None if grad_weight is None else grad_weight.to(weight.dtype),
                None if grad_bias is None else grad_bias.to(bias.dtype),
                None,
                None,
                None,
                None,
            )

    return ChunkedNextToken


def _project(hidden: Any, weight: Any, bias: Any, compute_dtype: Any) -> Any:
    """fp32 logits of `hidden` rows, the matmul in `compute_dtype`."""
    logits = hidden.to(compute_dtype) @ weight.t()
    if bias is not None:
        logits = logits.add_(bias)
    return logits.float()


def next_token_scores(
    hidden: Any, weight: Any, bias: Any, targets: Any, chunk_bytes: int = CHUNK_BYTES, stats: bool = True
) -> Any:
    """(log_probs, entropy, is_top1) of `targets` (N,) given `hidden` (N, H) and an LM head `weight` (V, H) and
    `bias` (V,) or None, in chunks of `chunk_tokens(V, chunk_bytes)` rows; under autocast the projection runs in
    the autocast dtype. `log_probs` is differentiable for `hidden`, `weight` and `bias`. Without `stats` (the
    loss alone, as evaluation needs) entropy and is_top1 are zeros and cost nothing."""
    import torch

    device = hidden.device.type
    compute = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
    chunk = chunk_tokens(weight.shape[0], chunk_bytes)
    return _function().apply(hidden, weight, bias, targets, chunk, compute, stats)


def unsupported(causal_model: Any) -> str | None:
    """Why the chunked loss cannot stand in for `causal_model`'s own (None when it can): it needs a plain Linear
    LM head whose logits the model does not transform (scaling, softcapping), a separate backbone, and no MoE
    router loss."""
    import torch

    head = causal_model.get_output_embeddings() if hasattr(causal_model, "get_output_embeddings") else None
    if head is None or type(head) is not torch.nn.Linear:
        return f"the LM head is {type(head).__name__}, not a plain Linear (an adapter or a quantized layer on it)"
    if type(head.weight.data) is not torch.Tensor:
        return f"the LM head's weight is a {type(head.weight.data).__name__} (sharded)"
    config = causal_model.config
    text = config.get_text_config()
    if text is not config:
        return "the model wraps its language model (multimodal)"
    for key in _LOGIT_TRANSFORMS:
        if getattr(text, key, None) not in (None, 1, 1.0):
            return f"its config transforms the logits ({key}={getattr(text, key)})"
    if getattr(text, "output_router_logits", False):
        return "it adds a router load-balancing loss (mixture of experts)"
    if causal_model.base_model is causal_model:
        return "it has no separate backbone"
    return None


def causal_model_of(model: Any) -> Any:
    """The causal LM inside `model` (PEFT models wrap it; their adapters sit inside its modules)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _fused_output(
    causal: Any, args: tuple, labels: Any, shift_labels: Any, num_items_in_batch: Any, kwargs: dict
):
    from trl.trainer.utils import FusedCausalLMOutput

    kwargs["use_cache"] = False
    hidden = causal.base_model(*args, **kwargs).last_hidden_state
    if shift_labels is None:
        hidden, labels = hidden[:, :-1], labels[:, 1:]
    else:
        labels = shift_labels
    head = causal.get_output_embeddings()
    labels = labels.to(head.weight.device)
    mask = labels != IGNORE_INDEX
    log_probs, entropy, top1 = next_token_scores(
        hidden.to(head.weight.device)[mask],
        head.weight,
        head.bias,
        labels[mask],
        causal._ftkit_chunk_bytes,
        causal._ftkit_stats,
    )
    # masked_scatter keeps an all-ignored batch connected to the graph: a differentiable zero, not a failed backward
    log_probs = log_probs.new_zeros(mask.shape).masked_scatter(mask, log_probs)
    entropy = entropy.new_zeros(mask.shape).masked_scatter(mask, entropy)
    top1 = top1.new_zeros(mask.shape).masked_scatter(mask, top1)
    divisor = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return FusedCausalLMOutput(
        loss=-log_probs.sum() / divisor, log_probs=log_probs, entropy=entropy, is_top1=top1, label_mask=mask
    )


def install(model: Any, chunk_bytes: int = CHUNK_BYTES, stats: bool = True) -> str | None:
    """Make `model(..., fused_lm_head=True)` (TRL's fused LM head call) compute the chunked loss over trained
    positions (with entropy and top-1 for TRL's metrics when `stats`); the forward it wraps still serves every
    other call. Returns None when installed, else why not (`unsupported`), leaving the model as it was."""
    causal = causal_model_of(model)
    reason = unsupported(causal)
    if reason is not None:
        return reason
    previous = causal.forward

    @functools.wraps(type(causal).forward)  # generate() validates its kwargs against this signature
    def forward(
        self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs
    ):
        if fused_lm_head:
            return _fused_output(self, args, labels, shift_labels, num_items_in_batch, kwargs)
        for key, value in (
            ("labels", labels),
            ("shift_labels", shift_labels),
            ("num_items_in_batch", num_items_in_batch),
        ):
            if value is not None:
                kwargs[key] = value
        return previous(*args, **kwargs)

    causal._ftkit_chunk_bytes, causal._ftkit_stats = chunk_bytes, stats
    causal.forward = types.MethodType(forward, causal)
    return None


@contextmanager
def chunked_head(model: Any, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bool]:
    """`install` (the loss alone, no entropy or top-1) for the duration of the block, then the model's forward as
    it was; yields whether it applies."""
    causal = causal_model_of(model)
    before = {key: vars(causal)[key] for key in ATTRIBUTES if key in vars(causal)}
    applies = install(model, chunk_bytes, stats=False) is None
    try:
        yield applies
    finally:
        if applies:
            for key in ATTRIBUTES:
                if key in before:
                    setattr(causal, key, before[key])
                else:
                    delattr(causal, key)
