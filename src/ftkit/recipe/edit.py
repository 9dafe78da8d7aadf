"""Edit a recipe's YAML text in place: set keys, keeping every comment, blank line and the author's layout.

Used by `ftkit checkout` to write a run's recipe as its author wrote it with the run's `--set` overrides applied,
and with relative paths rebased to the new file's folder. Only the value being set changes: an existing key has its
value replaced where it stands; a key absent from the file is added at the end of its section (the section is
created when absent too). After every edit the text is parsed again and must read exactly as the recipe with the
override applied, so an edit can never silently change another key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ftkit.errors import RecipeError
from ftkit.recipe.load import RecipeLoader, apply_override, parse_value, split_override

PATH_KEYS = (("data", "train"), ("data", "eval"), ("model",), ("output",))


def read_yaml(text: str) -> Any:
    """Parse recipe text as `ftkit run` does (`1e-4` is a float); an empty text is an empty mapping."""
    value = yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - a SafeLoader subclass
    return {} if value is None else value


def _last_end(node: yaml.Node) -> int:
    """Index just past the last character of a node's own content (block collections end at their last leaf,
    not after the comments and blank lines that follow them)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _last_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _last_end(node.value[-1])
    return node.end_mark.index


def _line_end(text: str, index: int) -> int:
    """Index of the start of the line after the one holding `index - 1` (the text's end when none)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _indent_step(root: yaml.MappingNode) -> int:
    """The author's indentation step for new sections: the smallest indent of a top-level section (2 if none)."""
    columns = [
        value.value[0][0].start_mark.column
        for _, value in root.value
        if isinstance(value, yaml.MappingNode) and not value.flow_style and value.value
    ]
    return min([c for c in columns if c > 0], default=2)


def _block(parts: tuple[str, ...], value_text: str, indent: int, step: int) -> str:
    """Lines `parts[0]:` / `  parts[1]:` ... `last: value`, starting at column `indent`."""
    lines = []
    for depth, part in enumerate(parts):
        pad = " " * (indent + depth * step)
        last = depth == len(parts) - 1
        lines.append(f"{pad}{part}: {value_text}" if last else f"{pad}{part}:")
    return "\n".join(lines) + "\n"


def _flow(parts: tuple[str, ...], value_text: str) -> str:
    """`a: {b: value}` for inserting into a flow mapping."""
    inner = value_text
    for part in reversed(parts[1:]):
        inner = f"{{{part}: {inner}}}"
    return f"{parts[0]}: {inner}"


def _insert(text: str, mapping: yaml.MappingNode, parts: tuple[str, ...], value_text: str, step: int) -> str:
    """Add `parts` (absent from `mapping`) with its value at the end of that mapping."""
    if mapping.flow_style:
        close = text.rfind("}", mapping.start_mark.index, mapping.end_mark.index)
        separator = ", " if mapping.value else ""
        return text[:close] + separator + _flow(parts, value_text) + text[close:]
    indent = mapping.value[0][0].start_mark.column if mapping.value else 0
    at = _line_end(text, _last_end(mapping)) if mapping.value else len(text)
    prefix = "" if at == 0 or text[at - 1] == "\n" else "\n"
    return text[:at] + prefix + _block(parts, value_text, indent, step) + text[at:]


def _replace(text: str, key: yaml.Node, value: yaml.Node, value_text: str) -> str:
    """Replace the value of one key; a block section or list is replaced from its key's colon to its last line."""
    if isinstance(value, (yaml.MappingNode, yaml.SequenceNode)) and not value.flow_style:
        colon = text.index(":", key.end_mark.index)
        end = _line_end(text, _last_end(value))
        return text[: colon + 1] + f" {value_text}\n" + text[end:]
    start, end = value.start_mark.index, value.end_mark.index
    if start == end:  # `key:` with no value written
        colon = text.index(":", key.end_mark.index)
        return text[: colon + 1] + f" {value_text}" + text[colon + 1 :]
    return text[:start] + value_text + text[end:]


def set_key(text: str, path: tuple[str, ...], value_text: str) -> str:
    """The recipe text with key `path` set to the YAML value `value_text`; everything else kept as written.

    Raises RecipeError when a key on the way holds a value that is not a section (as `--set` does).
    """
    root = yaml.compose(text, Loader=RecipeLoader)
    if root is None:
        prefix = "" if not text or text.endswith("\n") else "\n"
        return text + prefix + _block(path, value_text, 0, 2)
    if not isinstance(root, yaml.MappingNode):
        raise RecipeError("the recipe is not a mapping of keys, so its keys cannot be set")
    step = _indent_step(root)
    node = root
    for depth, part in enumerate(path):
        found = next(((k, v) for k, v in node.value if str(k.value) == part), None)
        rest = path[depth:]
        if found is None:
            return _insert(text, node, rest, value_text, step)
        key, value = found
        if depth == len(path) - 1:
            return _replace(text, key, value, value_text)
        if isinstance(value, yaml.MappingNode):
            node = value
            continue
        if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null"):
            # `section:` left empty: it becomes a section holding the rest of the path
            if node.flow_style:
                return _replace(text, key, value, _flow(rest[1:], value_text).join("{}"))
            indent = key.start_mark.column + step
            colon = text.index(":", key.end_mark.index)
            end = _line_end(text, colon + 1)
            return text[:end] + _block(rest[1:], value_text, indent, step) + text[end:]
        raise RecipeError(
            f"--set {'.'.join(path)}: `{'.'.join(path[: depth + 1])}` is not a section, so it has no keys"
        )
    return text


def _render(value: Any) -> str:
    """A value as one line of YAML (flow style), read back by the recipe loader as the same value."""
    if isinstance(value, str):
        dumped = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
        return dumped.removesuffix("\n...\n").removesuffix("\n")
    return json.dumps(value, ensure_ascii=False)


def apply_overrides(text: str, overrides: list[str]) -> str:
    """The recipe text with each `KEY=VALUE` override written into it, values as typed where they read back the same.

    Raises RecipeError when an override cannot be written so that the text reads as the overridden recipe.
    """
    expected = read_yaml(text)
    for override in overrides:
        path, value_text = split_override(override)
        apply_override(expected, override)
        typed = [value_text.strip()] if value_text.strip() else []  # `--set key=` is null: write `null`
        candidates = [*typed, _render(parse_value(value_text))]
        for candidate in candidates:
            edited = set_key(text, path, candidate)
            try:
                if read_yaml(edited) == expected:
                    text = edited
                    break
            except yaml.YAMLError:
                continue
        else:
            raise RecipeError(
                f"--set {override}: cannot be written into the recipe text",
                hint="use `ftkit checkout RUN --resolved` for the recipe with every value filled in",
            )
    return text


def rebase_paths(text: str, resolved: dict, folder: Path) -> tuple[str, list[str]]:
    """Rewrite relative paths (data files, a local model, output) so they point, from `folder`, where they
    pointed in the run; `resolved` holds each one made absolute. Returns the text and one note per change.

    A path is written relative to `folder` when the two share a folder below the filesystem root, else absolute.
    """
    folder = folder.resolve()
    notes: list[str] = []
    for path in PATH_KEYS:
        given, absolute = _get(read_yaml(text), path), _get(resolved, path)
        if not isinstance(given, str) or not isinstance(absolute, str) or not given.strip():
            continue
        if Path(given).expanduser().is_absolute() or not Path(absolute).is_absolute():
            continue  # absolute already, or a hub id the run kept as given
        if (folder / given).resolve() == Path(absolute).resolve():
            continue  # still right from the new folder
        key = ".".join(path)
        if os.path.commonpath([absolute, str(folder)]) != folder.anchor:
            new = os.path.relpath(absolute, folder)
            notes.append(f"{key}: {given} -> {new} (relative to {folder})")
        else:
            new = absolute
            notes.append(f"{key}: {given} -> {new} (absolute: no folder in common with {folder})")
        text = set_key(text, path, _render(new))
    return text, notes


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data
