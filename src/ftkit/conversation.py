"""What `ftkit chat` and the web UI's playground share: loading a model for text generation, and the conversation
rendered through the chat template so that it fits the model's positions.

    from ftkit.conversation import Conversation, load_for_generation
    from ftkit.targets import locate_target

    target = load_for_generation(locate_target("models/my-model"), "chat")
    conversation = Conversation(target.tokenizer, system=None, limit=target.max_length, max_new_tokens=64)
    text, dropped = conversation.prompt_for("hello")   # the rendered prompt; dropped: oldest exchanges left out

Torch loads only inside `load_for_generation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ftkit.errors import UsageError

NO_CACHE = "decoding without a KV cache (this method's cached decoding is wrong): exact, but slower"


class Conversation:
    """The turns so far (a system message stays first) and the rendering that fits the model's context."""

    def __init__(self, tokenizer: Any, system: str | None, limit: int | None, max_new_tokens: int):
        self.tokenizer = tokenizer
        self.system = [{"role": "system", "content": system}] if system else []
        self.turns: list[dict[str, str]] = []
        self.limit = limit
        self.max_new_tokens = max_new_tokens

    def reset(self) -> None:
        """Forget every turn (the system message stays)."""
        self.turns = []

    def prompt_for(self, user: str) -> tuple[str | None, int]:
        """The rendered prompt with `user` appended, and how many earlier exchanges were dropped to fit it; None
        when the message alone does not fit (it is then not kept)."""
        from ftkit.inference import render_prompt

        self.turns.append({"role": "user", "content": user})
        dropped = 0
        while True:
            text = render_prompt(self.tokenizer, self.system + self.turns)
            tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if self.limit is None or tokens + self.max_new_tokens <= self.limit:
                return text, dropped
            if len(self.turns) <= 1:
                self.turns.pop()
                return None, dropped
            del self.turns[:2]  # the oldest user message and its reply
            dropped += 1

    def answered(self, reply: str) -> None:
        """Keep the model's reply as the conversation's next turn."""
        self.turns.append({"role": "assistant", "content": reply})


def refuse_classifier(label: str, command: str) -> UsageError:
    """The error for `generate`/`chat` on a classification model: it picks labels, it writes no text."""
    return UsageError(
        f"{label} is a classification model: it picks a label for a text, it does not generate text, so "
        f"`ftkit {command}` cannot use it",
        hint="classify texts in Python: `from ftkit.targets import load_target; t = load_target(REF)`, then "
        "`t.labels[t.model(**t.tokenizer(TEXT, return_tensors='pt')).logits.argmax(-1).item()]`; "
        f"`ftkit {command}` needs a causal-lm run or model",
    )


def load_for_generation(source: Any, command: str, warn: Callable[[str], Any] | None = None) -> Any:
    """Load a located target (`ftkit.targets.TargetSource`) for text generation, on the GPU when there is one.
    A classification model is refused (UsageError naming `ftkit {command}`); the target's notes go to `warn`."""
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
        if warn is not None:
            warn(note)
    return target


def describe(target: Any) -> str:
    """One line: what is loaded and how it decodes."""
    decoding = "cached decoding" if target.use_cache else NO_CACHE
    return f"model: {target.label} · {decoding}"
