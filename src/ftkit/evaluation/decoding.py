"""Sampling, batching and streaming on top of `generate.py`'s greedy paths, exact for every method.

Temperature 0 is greedy and goes through `greedy_generate_batch`, the very path evaluation uses. Temperature > 0
samples: cached models through `model.generate(do_sample=True)` in left-padded batches; models whose cached
decoding is wrong (prefix and prompt tuning) through a loop of full forward passes that applies the same logits
warpers (temperature, then top-p) and draws from the same global torch generator, so a seed reproduces answers.
Streaming yields text pieces as tokens come: TextIteratorStreamer around `model.generate` for cached models, the
no-cache loop itself otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from ftkit.evaluation.generate import generate_in_batches, greedy_generate_batch, stop_token_ids


def _sampling_kwargs(temperature: float, top_p: float) -> dict[str, Any]:
    if temperature <= 0:
        return {"do_sample": False}
    # top_k=0: a model's generation_config may carry top_k=50, which the no-cache loop would not apply.
    return {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int = 64,
    *,
    use_cache: bool = True,
    device: str = "cpu",
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> list[str]:
    """Answers to already-rendered `prompts`, in order (new text only, special tokens stripped).

    temperature 0: greedy. Otherwise sampled; `seed` seeds torch once before the first batch, so the same prompts,
    batch size and seed give the same answers. Cached decoding runs left-padded batches; no-cache one by one."""
    import torch

    if temperature <= 0:
        return greedy_generate_batch(model, tokenizer, prompts, max_new_tokens, use_cache, device, batch_size)
    if seed is not None:
        torch.manual_seed(seed)
    if not use_cache:
        return ["".join(_no_cache_pieces(model, tokenizer, p, max_new_tokens, device, temperature, top_p))
                for p in prompts]  # fmt: skip
    return generate_in_batches(
        model, tokenizer, prompts, max_new_tokens, device, batch_size, **_sampling_kwargs(temperature, top_p)
    )


def stream_text(
    model: Any,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int = 64,
    *,
    use_cache: bool = True,
    device: str = "cpu",
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    on_tokens: Callable[[int], Any] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[str]:
    """Text pieces of the answer to one rendered `prompt` as tokens come; joined, they are the answer
    `generate_texts` gives for it alone. Closing the generator early stops the decoding. `on_tokens(n)` is told
    of every n tokens decoded (the stop token included), pieces of text or not. Setting `cancel` (from any thread)
    ends the decoding within a token (cached decoding may finish the step after), the answer ending there."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    if not use_cache:
        yield from _no_cache_pieces(model, tokenizer, prompt, max_new_tokens, device, temperature, top_p,
                                    on_tokens, cancel)  # fmt: skip
        return
    yield from _streamed_generate(
        model, tokenizer, prompt, max_new_tokens, device, temperature, top_p, on_tokens, cancel
    )


def _streamed_generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int,
    device: str,
    temperature: float,
    top_p: float,
    on_tokens: Callable[[int], Any] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[str]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    stop = threading.Event()

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = stop.is_set() or (cancel is not None and cancel.is_set())
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)

    class _Counted(TextIteratorStreamer):
        def put(self, value: Any) -> None:
            if on_tokens is not None and not (self.skip_prompt and self.next_tokens_are_prompt):
                on_tokens(int(value.numel()))
            super().put(value)

    streamer = _Counted(tokenizer, skip_prompt=True, skip_special_tokens=True)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.no_grad():
                model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=stop_token_ids(tokenizer) or None,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Stop()]),
                    **_sampling_kwargs(temperature, top_p),
                )
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)
            streamer.end()

    model.eval()
    worker = threading.Thread(target=work, name="ftkit-generate", daemon=True)
    worker.start()
    try:
        for piece in streamer:
            if piece:
                yield piece
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]


def _no_cache_pieces(
    model: Any,
    tokenizer: Any,
    prompt: str,
    max_new_tokens: int,
    device: str,
    temperature: float,
    top_p: float,
    on_tokens: Callable[[int], Any] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[str]:
    """Decode by full forward passes (no KV cache), yielding new text as it becomes whole characters."""
    import torch
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if temperature > 0 and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if temperature > 0 and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    stops = set(stop_token_ids(tokenizer))
    sequence = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)
    tokens: list[int] = []
    emitted = ""
    model.eval()
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if cancel is not None and cancel.is_set():
                break
            logits = model(
                input_ids=sequence, attention_mask=torch.ones_like(sequence), use_cache=False
            ).logits
            scores = logits[:, -1, :].to(dtype=torch.float32)
            if temperature > 0:
                probs = torch.softmax(warpers(sequence, scores), dim=-1)
                token = int(torch.multinomial(probs, num_samples=1)[0, 0])
            else:
                token = int(scores[0].argmax())
            tokens.append(token)
            if on_tokens is not None:
                on_tokens(1)
            if token in stops:
                break
            sequence = torch.cat([sequence, torch.tensor([[token]], device=sequence.device)], dim=1)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            if text.startswith(emitted) and not text.endswith("\ufffd") and len(text) > len(emitted):
                yield text[len(emitted) :]
                emitted = text
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    if len(text) > len(emitted):
        yield text[len(emitted) :]
