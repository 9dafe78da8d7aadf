"""The model a command runs on (`ftkit generate`, `ftkit chat`): locate it (registry runs through the registry),
refuse what cannot generate, load it and say what it is. Torch loads only inside `load_for_generation`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.errors import UsageError

REF_HELP = (
    "A registry run (id, unique prefix, name, tag, @latest), a run output folder, a model folder, "
    "a .gguf file or a Hub model id (owner/name)."
)
NO_CACHE = "decoding without a KV cache (this method's cached decoding is wrong): exact, but slower"


def locate(ref: str, registry_path: Path | None) -> Any:
    """The TargetSource `ref` names; a registry is read only when one exists (a path or Hub id needs none)."""
    from ftkit.cli._runs_common import open_or_none
    from ftkit.targets import locate_target

    registry = None if Path(ref).expanduser().exists() else open_or_none(registry_path)
    try:
        return locate_target(ref, registry)
    finally:
        if registry is not None:
            registry.close()


def refuse_classifier(label: str, command: str) -> UsageError:
    """The error for `generate`/`chat` on a classification model: it picks labels, it writes no text."""
    return UsageError(
        f"{label} is a classification model: it picks a label for a text, it does not generate text, so "
        f"`ftkit {command}` cannot use it",
        hint="classify texts in Python: `from ftkit.targets import load_target; t = load_target(REF)`, then "
        "`t.labels[t.model(**t.tokenizer(TEXT, return_tensors='pt')).logits.argmax(-1).item()]`; "
        f"`ftkit {command}` needs a causal-lm run or model",
    )


def load_for_generation(source: Any, command: str, out: Any) -> Any:
    """Load a located target for text generation, on the GPU when there is one; notes go through `out`."""
    if source.task == "classification":
        raise refuse_classifier(source.label, command)
    import torch

    from ftkit.targets import load_model_target
    from ftkit.train.quiet import quiet_libraries

    quiet_libraries()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    target = load_model_target(source, device=device)
    if target.task == "classification":  # a Hub id: only its config told
        raise refuse_classifier(target.label, command)
    for note in target.notes:
        out.warn(note)
    return target


def describe(target: Any) -> str:
    """One line: what is loaded and how it decodes."""
    decoding = "cached decoding" if target.use_cache else NO_CACHE
    return f"model: {target.label} · {decoding}"
