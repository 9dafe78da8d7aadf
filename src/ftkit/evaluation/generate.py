"""Greedy generation that is correct for every method.

`PeftModel.generate()` silently drops a trained prefix (prefix tuning) and cached decoding drifts for prompt
tuning, so methods can ask for `no_cache` decoding: repeated full forward passes, exact by construction.
"""

from __future__ import annotations

from typing import Any


def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int = 64,
    use_cache: bool = True,
    device: str = "cpu",
) -> str:
    """Greedy-decode a completion for `prompt` and return only the new text (special tokens stripped)."""
    import torch

    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
    stop_ids = set(stop_token_ids(tokenizer))
    model.eval()
    with torch.no_grad():
        if use_cache:
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(stop_ids) or None,
            )
            new_tokens = output[0, ids.shape[1] :].tolist()
        else:
            new_tokens = greedy_tokens_no_cache(model, ids, max_new_tokens, stop_ids)
    return tokenizer.decode(new_tokens, skip_special_tokens=True)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The ids that end an answer: the tokenizer's end-of-sequence and pad tokens."""
    return sorted({t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None})


def greedy_generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int = 64,
    use_cache: bool = True,
    device: str = "cpu",
    batch_size: int = 8,
) -> list[str]:
    """Greedy-decode many prompts. Cached decoding runs left-padded batches; no-cache decoding goes one by one."""
    if not use_cache:
        return [greedy_generate(model, tokenizer, p, max_new_tokens, False, device) for p in prompts]
    return generate_in_batches(model, tokenizer, prompts, max_new_tokens, device, batch_size, do_sample=False)


def generate_in_batches(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int,
    device: str,
    batch_size: int,
    **generation: Any,
) -> list[str]:
    """`model.generate(**generation)` over left-padded batches of rendered `prompts` (cached decoding); the new
    text of each, special tokens stripped, in order."""
    import torch

    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                batch = tokenizer(
                    prompts[start : start + batch_size],
                    add_special_tokens=False,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                generated = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stop_token_ids(tokenizer) or None,
                    **generation,
                )
                new = generated[:, batch["input_ids"].shape[1] :]
                outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = padding_side
    return outputs


def greedy_tokens_no_cache(model: Any, ids: Any, max_new_tokens: int, stop_ids: set[int]) -> list[int]:
    """Greedy decoding by repeated full forward passes without a KV cache: slow but exact for any model."""
    import torch

    sequence = ids
    new_tokens: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(input_ids=sequence, attention_mask=torch.ones_like(sequence), use_cache=False).logits
        token = int(logits[0, -1].argmax())
        new_tokens.append(token)
        if token in stop_ids:
            break
        sequence = torch.cat([sequence, torch.tensor([[token]], device=sequence.device)], dim=1)
    return new_tokens
