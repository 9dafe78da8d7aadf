"""Data formats: their fields, detection from the columns, and normalisation to one canonical shape per format.

Canonical shapes (what `normalize` returns):
- text:           {"text": str}
- completion:     {"prompt": str, "completion": str}
- instruction:    {"messages": [...]}  (alpaca rows become a user turn and an assistant turn)
- chat:           {"messages": [{"role": ..., "content": ...}, ...]}
- classification: {"text": str, "label": str | int}
- preference:     {"prompt": str, "chosen": str, "rejected": str}
"""

from __future__ import annotations

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
    """A row does not fit its format; `key` names the offending field."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def rename_columns(record: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Apply a recipe's `data.columns` mapping (format name -> column in the file)."""
    if not columns:
        return record
    renamed = dict(record)
    for canonical, source in columns.items():
        if source in renamed:
            renamed[canonical] = renamed.pop(source)
    return renamed


def detect_format(records: list[dict[str, Any]], columns: dict[str, str] | None = None) -> tuple[str, str]:
    """Guess the format from the first records' keys. Returns (format, reason shown to the user)."""
    sample = [rename_columns(r, columns or {}) for r in records[:50] if isinstance(r, dict)]
    if not sample:
        return "text", "no records to inspect; assuming text"
    keys = set().union(*(record.keys() for record in sample))
    if "conversations" in keys:
        return "chat", "found a `conversations` column (ShareGPT chat)"
    for name, fields in FORMAT_FIELDS.items():
        if all(field in keys for field in fields):
            return (
                name,
                f"found the {', '.join(f'`{f}`' for f in fields)} column{'s' if len(fields) > 1 else ''}",
            )
    if {"question", "answer"} <= keys:
        return "completion", "found `question` and `answer` (used as prompt and completion)"
    return "unknown", f"no known format matches the columns {sorted(keys)}"


def normalize(record: Any, fmt: str) -> dict[str, Any]:
    """Turn one (already renamed) record into its format's canonical shape, or raise RowError."""
    if not isinstance(record, dict):
        raise RowError(f"expected an object with fields, got {type(record).__name__}")
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
        if not isinstance(extra, str):
            raise RowError(f"`input` must be a string, got {type(extra).__name__}", key="input")
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
        if label is None or (isinstance(label, str) and not label.strip()):
            raise RowError("missing or empty `label`", key="label")
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if not isinstance(label, (str, int)) or isinstance(label, bool):
            raise RowError(f"`label` must be a string or an integer, got {type(label).__name__}", key="label")
        return {"text": _string(record, "text"), "label": label}
    if fmt == "preference":
        return {key: _string(record, key) for key in ("prompt", "chosen", "rejected")}
    raise RowError(f"unknown format `{fmt}`")


def _string(record: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    if key not in record or record[key] is None:
        raise RowError(f"missing field `{key}`", key=key)
    value = record[key]
    if not isinstance(value, str):
        raise RowError(f"`{key}` must be a string, got {type(value).__name__}", key=key)
    if not allow_empty and not value.strip():
        raise RowError(f"`{key}` is empty", key=key)
    return value


def _messages(record: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in record:
        raw, role_key, content_key, key = record["messages"], "role", "content", "messages"
    elif "conversations" in record:
        raw, role_key, content_key, key = record["conversations"], "from", "value", "conversations"
    else:
        raise RowError("missing field `messages`", key="messages")
    if not isinstance(raw, list) or not raw:
        raise RowError(f"`{key}` must be a non-empty list of turns", key=key)
    messages = []
    if isinstance(record.get("system"), str) and record["system"].strip():
        messages.append({"role": "system", "content": record["system"]})
    for index, turn in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(turn, dict):
            raise RowError(f"{where} must be an object with `{role_key}` and `{content_key}`", key=where)
        role = turn.get(role_key)
        if key == "conversations":
            role = _SHAREGPT_ROLES.get(str(role).lower(), role)
        if role not in VALID_ROLES:
            raise RowError(
                f"{where}: unknown role {role!r} (valid: {', '.join(VALID_ROLES)})", key=f"{where}.role"
            )
        content = turn.get(content_key)
        if not isinstance(content, str) or not content.strip():
            raise RowError(f"{where}: `{content_key}` is missing or empty", key=f"{where}.{content_key}")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("the conversation has no assistant turn, so nothing would be learned", key=key)
    if messages[-1]["role"] != "assistant":
        raise RowError("the conversation must end with an assistant turn", key=key)
    return messages
