"""Data formats: their fields, detection from the columns, and normalisation to one canonical shape per format.

Canonical shapes (what `normalize` returns):
- text:           {"text": str}
- completion:     {"prompt": str, "completion": str}
- instruction:    {"messages": [...]}  (alpaca rows become a user turn and an assistant turn)
- chat:           {"messages": [{"role": ..., "content": ...}, ...]}
- classification: {"text": str, "label": str | int}
- preference:     {"prompt": str, "chosen": str, "rejected": str}, or in TRL's conversational form
                  {"prompt": [turns], "chosen": [turns], "rejected": [turns]} (a string prompt with message-list
                  answers becomes one user turn)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "preference": ("prompt", "chosen", "rejected"),
    "instruction": ("instruction", "output"),
    "completion": ("prompt", "completion"),
    "classification": ("text", "label"),
    "text": ("text",),
}
VALID_ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "bot": "assistant",
    "model": "assistant",
}


class RowError(ValueError):
    """A row does not fit its format; `key` names the offending field, `code` the kind of problem."""

    def __init__(self, message: str, key: str | None = None, code: str = "invalid-row"):
        super().__init__(message)
        self.key = key
        self.code = code


@dataclass
class Example:
    """A canonical example (see the shapes above) and where it came from: its file and 1-based line."""

    source: str
    line: int
    data: dict[str, Any]


@dataclass
class Detection:
    """A format, why it was chosen, and the column mapping to use (the user's plus any found automatically)."""

    format: str
    reason: str
    columns: dict[str, str] = field(default_factory=dict)


def rename_columns(record: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Apply a recipe's `data.columns` mapping (format name -> column in the file)."""
    if not columns:
        return record
    renamed = dict(record)
    for canonical, source in columns.items():
        if source in renamed:
            renamed[canonical] = renamed.pop(source)
    return renamed


def _sample(records: list[Any], columns: dict[str, str]) -> list[dict[str, Any]]:
    return [rename_columns(r, columns) for r in records[:50] if isinstance(r, dict)]


def detect(records: list[Any], columns: dict[str, str] | None = None) -> Detection:
    """Guess the format from the first records' keys, mapping columns that differ only in case
    (`Label` -> `label`) or are the one obvious candidate (a classification file's only other column)."""
    columns = dict(columns or {})
    sample = _sample(records, columns)
    if not sample:
        return Detection("unknown", "the file has no records (objects with fields) to inspect", columns)
    keys = set().union(*(record.keys() for record in sample))
    if "conversations" in keys:
        return Detection("chat", "found a `conversations` column (ShareGPT chat)", columns)
    for name, fields in FORMAT_FIELDS.items():
        if all(f in keys for f in fields):
            plural = "s" if len(fields) > 1 else ""
            mapped = " (after the column mapping)" if any(f in columns for f in fields) else ""
            return Detection(name, f"found the {_names(fields)} column{plural}{mapped}", columns)
    if {"question", "answer"} <= keys:
        return Detection(
            "completion",
            "found `question` and `answer` (used as prompt and completion)",
            {**columns, "prompt": "question", "completion": "answer"},
        )
    for name, fields in FORMAT_FIELDS.items():
        extra = auto_columns(name, sample, columns)
        if extra and all(f in keys or f in extra for f in fields):
            mapped = ", ".join(f"`{source}` as `{target}`" for target, source in extra.items())
            return Detection(name, f"found the {name} columns ({mapped})", {**columns, **extra})
    return Detection("unknown", f"no known format matches the columns {sorted(keys, key=str)}", columns)


def choose_format(records: list[Any], fmt: str | None, columns: dict[str, str]) -> Detection:
    """The format to check `records` as: detected when `fmt` is auto (or empty), else `fmt` with the columns it
    needs mapped automatically where that is unambiguous (see `auto_columns`)."""
    if fmt in (None, "", "auto"):
        return detect(records, columns)
    if fmt not in FORMAT_FIELDS:
        return Detection(fmt, f"unknown format `{fmt}` (formats: {', '.join(FORMAT_FIELDS)})", columns)
    sample = _sample(records, columns)
    extra = auto_columns(fmt, sample, columns)
    if (
        fmt == "completion"
        and not extra
        and sample
        and all({"question", "answer"} <= r.keys() for r in sample)
    ):
        extra = {"prompt": "question", "completion": "answer"}
    reason = "set explicitly" + (
        f"; using {', '.join(f'`{s}` as `{t}`' for t, s in extra.items())}" if extra else ""
    )
    return Detection(fmt, reason, {**columns, **extra})


def auto_columns(fmt: str, sample: list[dict[str, Any]], columns: dict[str, str]) -> dict[str, str]:
    """Mappings for a format's missing fields: a column equal but for case (`Label`), and for
    classification, `text` from the single other column holding strings (`SMS`)."""
    fields = FORMAT_FIELDS.get(fmt)
    if not fields or not sample:
        return {}
    keys = [key for key in dict.fromkeys(k for record in sample for k in record) if isinstance(key, str)]
    taken = set(columns.values()) | {k for k in keys if k in fields}
    found: dict[str, str] = {}
    for wanted in fields:
        if wanted in keys or wanted in columns:
            continue
        matches = [k for k in keys if k.lower() == wanted and k not in taken]
        if len(matches) == 1:
            found[wanted] = matches[0]
            taken.add(matches[0])
    if fmt == "classification" and "text" not in keys and "text" not in found and "text" not in columns:
        others = [
            k
            for k in keys
            if k not in taken and all(isinstance(r.get(k), str) for r in sample if r.get(k) is not None)
        ]
        if len(others) == 1 and ("label" in keys or "label" in found or "label" in columns):
            found["text"] = others[0]
    return found


def _names(fields: tuple[str, ...]) -> str:
    return ", ".join(f"`{f}`" for f in fields)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def normalize(record: Any, fmt: str) -> dict[str, Any]:
    """Turn one (already renamed) record into its format's canonical shape, or raise RowError."""
    if not isinstance(record, dict):
        raise RowError(f"expected an object with fields, got {_type(record)}", code="not-an-object")
    if fmt == "text":
        return {"text": _string(record, "text")}
    if fmt == "completion":
        if "prompt" not in record and {"question", "answer"} <= record.keys():
            record = {"prompt": record["question"], "completion": record["answer"]}
        return {
            "prompt": _string(record, "prompt", allow_empty=True),
            "completion": _string(record, "completion"),
        }
    if fmt == "instruction":
        instruction = _string(record, "instruction")
        extra = record.get("input") or ""
        if _is_nan(extra):
            raise RowError("`input` is NaN (a missing value)", key="input", code="nan")
        if not isinstance(extra, str):
            raise RowError(f"`input` must be a string, got {_type(extra)}", key="input", code="wrong-type")
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        messages = [
            {"role": "user", "content": user},
            {"role": "assistant", "content": _string(record, "output")},
        ]
        if isinstance(record.get("system"), str) and record["system"].strip():
            messages.insert(0, {"role": "system", "content": record["system"]})
        return {"messages": messages}
    if fmt == "chat":
        return {"messages": _messages(record)}
    if fmt == "classification":
        label = record.get("label")
        if _is_nan(label):
            raise RowError("`label` is NaN (a missing value)", key="label", code="nan")
        if label is None:
            raise RowError("missing field `label`", key="label", code="missing-field")
        if isinstance(label, str) and not label.strip():
            raise RowError("`label` is empty", key="label", code="empty-field")
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if not isinstance(label, (str, int)) or isinstance(label, bool):
            raise RowError(
                f"`label` must be a string or an integer, got {_type(label)}", key="label", code="wrong-type"
            )
        return {"text": _string(record, "text"), "label": label}
    if fmt == "preference":
        return _preference(record)
    raise RowError(f"unknown format `{fmt}`", code="unknown-format")


def _type(value: Any) -> str:
    """A JSON-ish name for a value's type, as users see it in their file."""
    names = {dict: "an object", list: "a list", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _string(record: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    if key not in record or record[key] is None:
        raise RowError(f"missing field `{key}`", key=key, code="missing-field")
    value = record[key]
    if _is_nan(value):
        raise RowError(f"`{key}` is NaN (a missing value)", key=key, code="nan")
    if not isinstance(value, str):
        raise RowError(f"`{key}` must be a string, got {_type(value)}", key=key, code="wrong-type")
    if not allow_empty and not value.strip():
        raise RowError(f"`{key}` is empty", key=key, code="empty-field")
    return value


def _messages(record: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in record:
        raw, role_key, content_key, key = record["messages"], "role", "content", "messages"
    elif "conversations" in record:
        raw, role_key, content_key, key = record["conversations"], "from", "value", "conversations"
    else:
        raise RowError("missing field `messages`", key="messages", code="missing-field")
    if not isinstance(raw, list):
        raise RowError(f"`{key}` must be a list of turns, got {_type(raw)}", key=key, code="wrong-type")
    if not raw:
        raise RowError(f"`{key}` is empty: no turns", key=key, code="empty-field")
    messages = []
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise RowError(f"`system` must be a string, got {_type(system)}", key="system", code="wrong-type")
    if isinstance(record.get("system"), str) and record["system"].strip():
        messages.append({"role": "system", "content": record["system"]})
    for index, turn in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            raise RowError(
                f"{where} must be an object with `{role_key}` and `{content_key}`, got {_type(turn)}",
                key=where,
                code="wrong-type",
            )
        role = turn.get(role_key)
        if role is None:
            raise RowError(f"{where}: missing `{role_key}`", key=f"{where}.{role_key}", code="missing-field")
        if key == "conversations" and isinstance(role, str):
            role = _SHAREGPT_ROLES.get(role.lower(), role)
        if not isinstance(role, str) or role not in VALID_ROLES:
            raise RowError(
                f"{where}: unknown role {role!r} (valid: {', '.join(VALID_ROLES)})",
                key=f"{where}.{role_key}",
                code="unknown-role",
            )
        content = turn.get(content_key)
        where_content = f"{where}.{content_key}"
        if content is None:
            raise RowError(f"{where}: missing `{content_key}`", key=where_content, code="missing-field")
        if _is_nan(content):
            raise RowError(f"{where}: `{content_key}` is NaN", key=where_content, code="nan")
        if not isinstance(content, str):
            raise RowError(
                f"{where}: `{content_key}` must be a string, got {_type(content)}",
                key=where_content,
                code="wrong-type",
            )
        if not content.strip():
            raise RowError(f"{where}: `{content_key}` is empty", key=where_content, code="empty-field")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError(
            "the conversation has no assistant turn, so nothing would be learned",
            key=key,
            code="no-assistant",
        )
    if messages[-1]["role"] != "assistant":
        raise RowError(
            f"the conversation ends with a {messages[-1]['role']} turn; it must end with an assistant turn",
            key=key,
            code="not-ending-in-assistant",
        )
    return messages


def _preference(record: dict[str, Any]) -> dict[str, Any]:
    """A preference pair: three strings, or TRL's conversational form with message-list answers."""
    answers = [record.get("chosen"), record.get("rejected")]
    if not any(isinstance(answer, list) for answer in answers):
        # An empty rejected reply is a real preference (the model said nothing); the checker warns about it.
        return {
            "prompt": _string(record, "prompt"),
            "chosen": _string(record, "chosen"),
            "rejected": _string(record, "rejected", allow_empty=True),
        }
    for key, answer in zip(("chosen", "rejected"), answers, strict=True):
        if answer is None:
            raise RowError(f"missing field `{key}`", key=key, code="missing-field")
        if not isinstance(answer, list):
            other = "rejected" if key == "chosen" else "chosen"
            raise RowError(
                f"`{key}` must be a list of turns like `{other}`, got {_type(answer)}: give both answers as "
                "message lists or both as strings",
                key=key,
                code="wrong-type",
            )
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": _string(record, "prompt")}]
    elif isinstance(prompt, list):
        prompt = _turns(prompt, "prompt")
    else:
        _string(record, "prompt")  # raises the located missing / NaN / wrong-type error
    chosen = _turns(record["chosen"], "chosen", answer=True)
    rejected = _turns(record["rejected"], "rejected", answer=True, allow_empty=True)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _turns(raw: list[Any], key: str, answer: bool = False, allow_empty: bool = False) -> list[dict[str, str]]:
    """A message list of a conversational preference row; an answer must end with an assistant turn."""
    if not raw:
        raise RowError(f"`{key}` is empty: no turns", key=key, code="empty-field")
    turns = []
    for index, turn in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            raise RowError(
                f"{where} must be an object with `role` and `content`, got {_type(turn)}",
                key=where,
                code="wrong-type",
            )
        role, content = turn.get("role"), turn.get("content")
        if role is None:
            raise RowError(f"{where}: missing `role`", key=f"{where}.role", code="missing-field")
        if not isinstance(role, str) or role not in VALID_ROLES:
            raise RowError(
                f"{where}: unknown role {role!r} (valid: {', '.join(VALID_ROLES)})",
                key=f"{where}.role",
                code="unknown-role",
            )
        if content is None:
            raise RowError(f"{where}: missing `content`", key=f"{where}.content", code="missing-field")
        if not isinstance(content, str):
            raise RowError(
                f"{where}: `content` must be a string, got {_type(content)}",
                key=f"{where}.content",
                code="wrong-type",
            )
        if not content.strip() and not (allow_empty and index == len(raw) - 1):
            raise RowError(f"{where}: `content` is empty", key=f"{where}.content", code="empty-field")
        turns.append({"role": role, "content": content})
    if answer and turns[-1]["role"] != "assistant":
        raise RowError(
            f"`{key}` ends with a {turns[-1]['role']} turn; an answer must end with an assistant turn",
            key=key,
            code="not-ending-in-assistant",
        )
    return turns


def answer_text(answer: str | list[dict[str, str]]) -> str:
    """A preference answer's text: the string itself, or its turns' contents joined."""
    return answer if isinstance(answer, str) else "\n".join(turn["content"] for turn in answer)


def as_sft(example: dict[str, Any], answer: str) -> dict[str, Any]:
    """One side of a canonical preference pair (`answer` is chosen or rejected) as the causal-LM example it
    renders like: a completion for strings, a conversation for message lists."""
    if isinstance(example[answer], list):
        return {"messages": [*example["prompt"], *example[answer]]}
    return {"prompt": example["prompt"], "completion": example[answer]}
