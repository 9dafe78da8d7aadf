"""A small YAML writer and reader for the registry's `resolved.yaml`, so the registry needs no YAML library.

`dump` writes block-style YAML that any YAML parser (PyYAML included, with its YAML 1.1 quirks) reads back to the
same values: strings are left plain only when they cannot be mistaken for anything else, and are JSON-quoted
otherwise; floats always carry a dot. `load` reads back exactly what `dump` writes (it is not a general YAML parser).
"""

from __future__ import annotations

import enum
import json
import math
import re
from pathlib import PurePath
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_KEYWORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_INT = re.compile(r"^-?[0-9]+$")
_FLOAT = re.compile(r"^-?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?$")


def normalize(value: Any) -> Any:
    """Turn a value into plain JSON-compatible data (paths and enums to strings, tuples to lists)."""
    if isinstance(value, dict):
        return {str(key): normalize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [normalize(item) for item in items]
    if isinstance(value, enum.Enum):
        return normalize(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "model_dump"):  # pydantic models, without importing pydantic
        return normalize(value.model_dump())
    return str(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            if "." not in mantissa:
                mantissa += ".0"
            if exponent[0] not in "+-":
                exponent = "+" + exponent
            text = f"{mantissa}e{exponent}"
        return text
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return _quote(text)


def _quote(text: str) -> str:
    """JSON double quotes (valid YAML), with characters YAML refuses raw written as \\u escapes."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _KEYWORDS:
        return key
    return _quote(key)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_key(key)}:")
                _emit(item, indent + 2, out)
            else:
                out.append(f"{pad}{_key(key)}: {_inline(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}-")
                _emit(item, indent + 2, out)
            else:
                out.append(f"{pad}- {_inline(item)}")


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump(data: dict, header: str | None = None) -> str:
    """YAML text for a nested dict (normalized first); `header` becomes leading comment lines."""
    data = normalize(data)
    out = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    if not data:
        out.append("{}")
    else:
        _emit(data, 0, out)
    return "\n".join(out) + "\n"


def _parse_scalar(text: str) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    if text == "{}":
        return {}
    if text == "[]":
        return []
    lowered = text.lower()
    if lowered in ("null", "~"):
        return None
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if text in (".nan", ".NaN"):
        return math.nan
    if text in (".inf", "+.inf"):
        return math.inf
    if text == "-.inf":
        return -math.inf
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _split_key(content: str) -> tuple[str, str]:
    if content.startswith('"'):
        key, end = json.JSONDecoder().raw_decode(content)
        rest = content[end:]
    else:
        index = content.find(":")
        if index < 0:
            raise ValueError(f"expected 'key: value', got {content!r}")
        key, rest = content[:index], content[index:]
    if not rest.startswith(":"):
        raise ValueError(f"expected ':' after key in {content!r}")
    return key, rest[1:].strip()


def load(text: str) -> dict:
    """Parse YAML written by `dump` back into a dict."""
    lines: list[tuple[int, str]] = []
    for raw in text.split("\n"):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lines.append((len(raw) - len(raw.lstrip(" ")), stripped))
    if not lines:
        return {}
    if lines == [(0, "{}")]:
        return {}
    value, pos = _parse_block(lines, 0, lines[0][0])
    if pos != len(lines):
        raise ValueError(f"unexpected indentation at {lines[pos][1]!r}")
    if not isinstance(value, dict):
        raise ValueError("top level is not a mapping")
    return value


def _parse_block(lines: list[tuple[int, str]], pos: int, indent: int) -> tuple[Any, int]:
    is_list = lines[pos][1] == "-" or lines[pos][1].startswith("- ")
    result: Any = [] if is_list else {}
    while pos < len(lines):
        line_indent, content = lines[pos]
        if line_indent < indent:
            break
        if line_indent > indent:
            raise ValueError(f"unexpected indentation at {content!r}")
        if is_list:
            if not (content == "-" or content.startswith("- ")):
                raise ValueError(f"expected a list item at {content!r}")
            rest = content[1:].strip()
            pos += 1
            if rest:
                result.append(_parse_scalar(rest))
            else:
                item, pos = _nested(lines, pos, indent)
                result.append(item)
        else:
            key, rest = _split_key(content)
            pos += 1
            if rest:
                result[key] = _parse_scalar(rest)
            else:
                result[key], pos = _nested(lines, pos, indent)
    return result, pos


def _nested(lines: list[tuple[int, str]], pos: int, indent: int) -> tuple[Any, int]:
    if pos < len(lines) and lines[pos][0] > indent:
        return _parse_block(lines, pos, lines[pos][0])
    return None, pos
