"""YAML written by ftkit (`resolved.yaml` in outputs and in the registry, recipes from `ftkit rerun`): PyYAML, one
dumper, one loader.

`dump` is `yaml.safe_dump` (libyaml's C emitter when present) with one representer for strings, so every value
reads back exactly, with PyYAML's safe loader and with the recipe loader (which also reads `1e-4` as a float):

- a string that Python would read as a number (`1e-3`, `0x10`, `1_000`, `inf`) is double-quoted; PyYAML's own
  resolvers already quote the ones YAML 1.1 would turn into numbers, booleans, nulls or dates (`yes`, `1:20`,
  `2025-01-01`, `~`);
- a string with a line break is written as a literal block (`|`), readable in `git show`; PyYAML falls back to a
  double-quoted scalar where a block could not hold the text exactly (trailing spaces, unprintable characters);
- floats keep PyYAML's form (`1.0e-05`, `.inf`, `.nan`), which reads back to the same float.

Files written by the former home-made writer (yamlish: JSON-quoted strings, floats with a dot) are plain YAML
and read back unchanged (tests/fixtures/resolved_yamlish.yaml). Like `errors` and `hashing`, this module imports
no other ftkit module, so the registry, the runner and the CLI share it.
"""

from __future__ import annotations

import enum
from pathlib import PurePath
from typing import Any

import yaml

_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """Safe dumper with the string representer below."""


def _reads_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        try:
            int(text, 0)
        except ValueError:
            return False
    return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar(_STR, value, style="|")
    if _reads_as_number(value):
        return dumper.represent_scalar(_STR, value, style='"')
    return dumper.represent_scalar(_STR, value)


_Dumper.add_representer(str, _represent_str)


def normalize(value: Any) -> Any:
    """Plain JSON-compatible data of exact built-in types: paths and enums become strings or their values,
    tuples and sets lists, pydantic models dicts, int/float/str subclasses (numpy scalars) their base type."""
    if isinstance(value, dict):
        return {str(key): normalize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [normalize(item) for item in items]
    if isinstance(value, enum.Enum):
        return normalize(value.value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "model_dump"):  # pydantic models, without importing pydantic
        return normalize(value.model_dump())
    return str(value)


def dump(data: dict, header: str | None = None) -> str:
    """YAML text for a nested dict (normalized first, key order kept); `header` becomes leading comment lines."""
    text = yaml.dump(
        normalize(data),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,  # never fold a long value over several lines
    )
    if header:
        text = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) + text
    return text


def load(text: str) -> dict:
    """Parse YAML text (written by `dump`, by the former yamlish writer, or by hand) into a dict.

    An empty document is {}; anything else at the top level than a mapping raises ValueError, as does bad YAML.
    """
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from error
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"top level is a {type(value).__name__}, not a mapping")
    return value
