"""Loading a trained run's output and generating from it, correctly for every method.

    from ftkit.inference import load_trained_model, generate

    trained = load_trained_model("outputs/20250101-120000-abcdef")      # adapter on its base, as trained
    print(generate(trained, "What is the capital of France?"))          # chat template applied
    merged = load_trained_model("outputs/...", merge=True)              # adapter folded into the base
    generate_batch(trained, ["Hi", "Bye"], temperature=0.7, top_p=0.9, seed=1)  # sampled, batched, repeatable
    for piece in stream(trained, "Tell me a story"): print(piece, end="")     # text as tokens come

Any model, not only run outputs (registry runs, model folders, Hub ids, .gguf files): `ftkit.targets.load_target`;
these functions take its ModelTarget as they take a TrainedModel.

The output folder holds `resolved.yaml` (written by the runner, secrets scrubbed), the tokenizer and the method's
weights. The base model is rebuilt from `resolved.yaml`; the method re-applies its weights. Generation goes through
`ftkit.evaluation.generate` (greedy) and `ftkit.evaluation.decoding` (sampling, streaming), which decode without
a KV cache for methods whose cached generation is wrong (prefix and prompt tuning). Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import MethodError, ModelError
from ftkit.methods.base import Method, MethodOptions
from ftkit.registry.scrub import REDACTED


@dataclass
class TrainedModel:
    """A reloaded run output: the model ready for inference, its tokenizer, and the method that made it."""

    model: Any
    tokenizer: Any
    method: Method
    options: MethodOptions
    resolved: dict[str, Any]
    output_dir: Path
    device: str = "cpu"
    merged: bool = False
    labels: list[str] | None = field(default=None)

    @property
    def use_cache(self) -> bool:
        """Whether cached (KV) decoding is exact for this method; False for prefix and prompt tuning."""
        return self.method.generation_use_cache


def read_resolved(output_dir: str | Path) -> dict[str, Any]:
    """The resolved recipe the runner saved beside the weights."""
    import yaml

    path = Path(output_dir) / "resolved.yaml"
    if not path.is_file():
        raise ModelError(
            f"{output_dir} has no resolved.yaml, so it is not an ftkit run output",
            hint="pass the run's output folder (OUTPUT/<run-id>/), as printed at the end of `ftkit run`",
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _method_of(resolved: dict[str, Any]) -> tuple[Method, MethodOptions]:
    from ftkit.methods.catalog import get_method

    raw = dict(resolved.get("method") or {})
    method = get_method(str(raw.pop("name", "lora")))
    return method, method.parse_options(raw)


def _labels(output_dir: Path) -> list[str] | None:
    path = output_dir / "labels.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_base_model(output_dir: str | Path, *, full_precision: bool = False, device: str = "cpu") -> Any:
    """The base model a run trained on, loaded as the method loads it (QLoRA: 4-bit), or in full precision
    (`full_precision=True`, the base an adapter is merged into)."""
    from ftkit.train.model_loading import load_dtype, load_model, load_tokenizer, model_skeleton

    output_dir = Path(output_dir)
    resolved = read_resolved(output_dir)
    method, options = _method_of(resolved)
    method.check_requirements()
    model, task, labels = str(resolved["model"]), resolved.get("task", "causal-lm"), _labels(output_dir)
    if REDACTED in model:
        raise ModelError(
            f"{output_dir / 'resolved.yaml'}: model: {model!r} was redacted when the run was saved (it held "
            "something that looks like a secret), so the base model cannot be found from it",
            hint="write the base model's path or Hub id (the recipe's `model:`) back into `model:` of that file, "
            "then load again",
        )
    if full_precision:
        kwargs = method.merge_load_kwargs(options, device)
    else:  # the base exactly as the run loaded it (QLoRA: the same layers kept in full precision)
        kwargs, _ = method.base_load_kwargs(
            options, device, lambda: model_skeleton(model, output_dir, task, len(labels) if labels else None)
        )
    # A decoder classifier pools the last token that is not the pad: use the pad the run's tokenizer batches with.
    pad_token_id = load_tokenizer(str(output_dir), output_dir).pad_token_id if labels else None
    dtype = load_dtype((resolved.get("training") or {}).get("precision"), method.is_adapter)
    return load_model(model, output_dir, task, dtype, kwargs, labels, pad_token_id)


def load_trained_model(
    output_dir: str | Path, *, merge: bool = False, full_precision_base: bool = False, device: str = "cpu"
) -> TrainedModel:
    """Rebuild a run's trained model from its output folder.

    merge: fold the adapter into the base (mergeable methods only; QLoRA merges onto a full-precision base).
    full_precision_base: put the adapter on a full-precision base without merging (QLoRA's unmerged reference).
    """
    from ftkit.train.model_loading import damaged_weights_error, load_tokenizer, model_class
    from ftkit.train.quiet import quiet_bitsandbytes_import

    quiet_bitsandbytes_import()
    output_dir = Path(output_dir)
    resolved = read_resolved(output_dir)
    method, options = _method_of(resolved)
    if merge and not method.mergeable:
        raise MethodError(
            f"method `{method.name}` cannot be merged into the base model",
            hint="load it without merging; mergeable methods are marked in `ftkit methods`",
        )
    method.check_requirements()
    tokenizer = load_tokenizer(str(output_dir), output_dir)
    method.tokenizer = tokenizer
    task = resolved.get("task", "causal-lm")
    auto = model_class(task)
    base = None
    if method.is_adapter:
        base = load_base_model(output_dir, full_precision=merge or full_precision_base, device=device)
    try:
        model = method.load_trained(base, output_dir, auto)
    except Exception as error:
        damaged = damaged_weights_error(
            error,
            output_dir,
            f"the trained weights of {output_dir}",
            hint="the file was truncated or overwritten after the run: the registry keeps an intact copy at "
            "REGISTRY/objects/sha256/<first 2 hex digits>/<the other 62> (`ftkit show RUN` lists each file's "
            "sha256); copy it back, or train again with `ftkit rerun RUN`",
        )
        if damaged is None:
            raise
        raise damaged from None
    if merge:
        model = method.merge(model)
    if not getattr(model, "is_loaded_in_4bit", False) and not getattr(model, "hf_device_map", None):
        model.to(device)
    model.eval()
    return TrainedModel(
        model, tokenizer, method, options, resolved, output_dir, device, merge, _labels(output_dir)
    )


def render_prompt(tokenizer: Any, prompt: str | list[dict[str, str]], chat: bool = True) -> str:
    """The text the model reads: a string as one user message through the chat template (chat=False: the string
    as is); a list of {role, content} messages as a conversation, ending with the assistant's turn to answer.
    A tokenizer without a chat template gets ftkit's default one (ChatML), as training gives it."""
    from ftkit.data.render import ensure_chat_template

    if isinstance(prompt, list) or chat:
        ensure_chat_template(tokenizer)
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt


def generate(
    trained: Any,
    prompt: str | list[dict[str, str]],
    max_new_tokens: int = 64,
    *,
    chat: bool = True,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> str:
    """Decode a reply (greedy at temperature 0, else sampled with `top_p`; `seed` makes sampling repeatable).
    A string is sent as one user message through the chat template (chat=False: raw text); a list of {role,
    content} messages is rendered as a conversation. `trained`: a TrainedModel or a `ftkit.targets.ModelTarget`."""
    from ftkit.evaluation.decoding import generate_texts
    from ftkit.evaluation.generate import greedy_generate

    text = render_prompt(trained.tokenizer, prompt, chat)
    if temperature <= 0:
        return greedy_generate(
            trained.model,
            trained.tokenizer,
            text,
            max_new_tokens,
            use_cache=trained.use_cache,
            device=trained.device,
        )
    return generate_texts(trained.model, trained.tokenizer, [text], max_new_tokens, use_cache=trained.use_cache,
                          device=trained.device, temperature=temperature, top_p=top_p, seed=seed)[0]  # fmt: skip


def generate_batch(
    trained: Any,
    prompts: list[str | list[dict[str, str]]],
    max_new_tokens: int = 64,
    *,
    chat: bool = True,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> list[str]:
    """Replies to many prompts, in order, in batches of `batch_size` (left-padded, cached decoding; methods that
    must decode without a KV cache go one by one). Prompts are rendered as `generate` renders them."""
    from ftkit.evaluation.decoding import generate_texts

    texts = [render_prompt(trained.tokenizer, prompt, chat) for prompt in prompts]
    return generate_texts(trained.model, trained.tokenizer, texts, max_new_tokens, use_cache=trained.use_cache,
                          device=trained.device, batch_size=batch_size, temperature=temperature, top_p=top_p,
                          seed=seed)  # fmt: skip


def stream(
    trained: Any,
    prompt: str | list[dict[str, str]],
    max_new_tokens: int = 64,
    *,
    chat: bool = True,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield the reply's text in pieces as tokens are decoded; joined, the pieces are `generate`'s reply."""
    from ftkit.evaluation.decoding import stream_text

    text = render_prompt(trained.tokenizer, prompt, chat)
    yield from stream_text(trained.model, trained.tokenizer, text, max_new_tokens, use_cache=trained.use_cache,
                           device=trained.device, temperature=temperature, top_p=top_p, seed=seed)  # fmt: skip
