"""Prompts for `ftkit generate --file`: a .txt file (one prompt per non-empty line) or a .jsonl file of rows.

A .jsonl row is one of:
- `{"prompt": "..."}` (also `{"question": "..."}`, GSM8K's shape): one user message;
- `{"messages": [{"role": ..., "content": ...}, ...]}`: a conversation; a last assistant turn is the reference
  answer, not part of the prompt (so a run's own chat or eval file works as is);
- `{"instruction": "...", "input": "..."}` (alpaca): the instruction, then the input, as one user message.
A `completion`, `answer` or `output` field is kept as the row's reference. Every bad row is reported at once, with
its line, before anything is generated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.errors import DataError

PROMPT_KEYS = ("prompt", "question", "messages", "instruction")
_REFERENCE_KEYS = ("completion", "answer", "output")


@dataclass
class PromptRow:
    """One prompt: text (a user message, or raw text with --raw) or a message list, and where it came from."""

    prompt: str | list[dict[str, str]]
    source: str
    line: int | None = None
    reference: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def read_prompt_file(path: str | Path, raw: bool = False) -> list[PromptRow]:
    """Every prompt of a .txt or .jsonl file; DataError (exit 2) listing each bad line. `raw`: prompts are sent
    without the chat template, so conversation rows (which need it) are refused."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file", hint="pass a .jsonl file of prompt rows or a .txt file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{file}: cannot read it as UTF-8 text: {error}") from None
    lines = text.splitlines()
    if file.suffix.lower() == ".txt":
        rows = [PromptRow(line, str(file), number) for number, line in enumerate(lines, 1) if line.strip()]
        problems: list[str] = []
    elif file.suffix.lower() == ".jsonl":
        rows, problems = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(_row(json.loads(line), str(file), number, raw))
            except ValueError as error:  # json.JSONDecodeError included
                problems.append(f"{file}:{number}: {error}")
    else:
        raise DataError(
            f"{file}: unsupported prompts file `{file.suffix or '(no suffix)'}`",
            hint='use .jsonl (one {"prompt": ...} or {"messages": [...]} object per line) or .txt (one prompt '
            "per line)",
        )
    if problems:
        raise DataError(
            f"{file}: {len(problems)} bad row(s); nothing was generated",
            hint='each line must be {"prompt": "..."}, {"messages": [{"role": "user", "content": "..."}]} or '
            '{"instruction": "...", "input": "..."}; fix or remove the lines named',
            problems=problems,
        )
    if not rows:
        raise DataError(f"{file}: no prompts in the file", hint="write one prompt per line")
    return rows


def _row(data: Any, source: str, line: int, raw: bool) -> PromptRow:
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    reference = next((data[k] for k in _REFERENCE_KEYS if isinstance(data.get(k), str)), None)
    if "messages" in data:
        return _messages_row(data["messages"], source, line, raw, reference)
    if "prompt" in data or "question" in data:
        key = "prompt" if "prompt" in data else "question"
        return PromptRow(_text(data, key), source, line, reference)
    if "instruction" in data:
        instruction, extra = _text(data, "instruction"), data.get("input") or ""
        if not isinstance(extra, str):
            raise ValueError("input: must be a string")
        return PromptRow(
            f"{instruction}\n\n{extra}" if extra.strip() else instruction, source, line, reference
        )
    raise ValueError(
        f"no prompt: the row needs one of {', '.join(PROMPT_KEYS)} (it has {', '.join(data) or 'none'})"
    )


def _text(data: dict, key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{key}: is empty")
    return value


def _messages_row(messages: Any, source: str, line: int, raw: bool, reference: str | None) -> PromptRow:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: must be a non-empty list of {role, content} turns")
    for index, turn in enumerate(messages):
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
            raise ValueError(f"messages[{index}]: must be an object with a string `content`")
        if turn.get("role") not in ("system", "user", "assistant"):
            raise ValueError(
                f"messages[{index}].role: must be system, user or assistant, got {turn.get('role')!r}"
            )
    turns = [{"role": turn["role"], "content": turn["content"]} for turn in messages]
    if turns[-1]["role"] == "assistant":  # the reference answer of a training or eval row
        reference = turns.pop()["content"]
    if not turns or turns[-1]["role"] != "user":
        raise ValueError(
            "messages: the conversation must end with a user turn (then an optional assistant answer)"
        )
    if raw:
        raise ValueError("messages: a conversation needs the chat template; drop --raw for this file")
    return PromptRow(turns, source, line, reference)
