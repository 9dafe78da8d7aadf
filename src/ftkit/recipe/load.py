"""Loading a recipe: YAML with line numbers, `--set` overrides, and every problem reported at once.

Each problem reads `FILE:LINE: KEY: message` so users can jump straight to it. Relative paths in a recipe
(data files, a local model, the output folder) are resolved against the recipe file's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ftkit.data.readers import special_file_kind
from ftkit.errors import FtkitError, RecipeError
from ftkit.evaluation.scoring import metric_problems
from ftkit.hub_ids import is_hub_dataset_id, is_hub_model_id
from ftkit.methods.base import MethodOptions
from ftkit.recipe.distributed_checks import distributed_problems
from ftkit.recipe.eval_checks import evaluation_problems
from ftkit.recipe.preference_config import preference_problems
from ftkit.recipe.schema import Recipe, known_keys
from ftkit.recipe.tracking_config import normalize_raw as normalize_tracking
from ftkit.suggest import did_you_mean

# Nodes that aliases may add to a document once expanded. Real recipes reuse a block or two (tens of nodes); a
# "billion laughs" document of nested aliases expands to billions, which every walk over the tree would visit.
MAX_ALIAS_EXPANSION = 10_000


class AliasExpansionError(yaml.composer.ComposerError):
    """Aliases in a YAML document would expand it beyond MAX_ALIAS_EXPANSION nodes (or into a cycle)."""


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` as a float (YAML 1.1 wants a dot in the mantissa): how recipes are read.
    It refuses documents whose aliases expand beyond MAX_ALIAS_EXPANSION nodes, located at the alias."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._alias_nodes = 0
        self._node_sizes: dict[int, int] = {}
        self._open_anchors: list[str | None] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if event.anchor in self._open_anchors:
                raise AliasExpansionError(
                    None,
                    None,
                    f"alias *{event.anchor} refers to a node that contains itself",
                    event.start_mark,
                )
            if node is not None:
                self._alias_nodes += self._expanded_size(node)
                if self._alias_nodes > MAX_ALIAS_EXPANSION:
                    raise AliasExpansionError(
                        None,
                        None,
                        f"alias *{event.anchor} makes the aliases expand to more than "
                        f"{MAX_ALIAS_EXPANSION:,} nodes",
                        event.start_mark,
                    )
            return super().compose_node(parent, index)
        anchor = self.peek_event().anchor
        self._open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.pop()

    def _expanded_size(self, node: yaml.Node) -> int:
        """Nodes in `node` once every alias inside it is expanded (memoized, so shared nodes cost once). Aliases
        only reach finished nodes (an alias into an open one is refused above), so there is no cycle."""
        key = id(node)
        if key not in self._node_sizes:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            self._node_sizes[key] = 1 + sum(self._expanded_size(child) for child in children)
        return self._node_sizes[key]


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


@dataclass
class LoadedRecipe:
    """A validated recipe with its method options and where it came from."""

    recipe: Recipe
    method_options: MethodOptions
    path: Path
    text: str
    overrides: list[str]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve_path(self, value: str) -> Path:
        """A path from the recipe, made absolute against the recipe's folder."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()


def parse_value(text: str) -> Any:
    """Parse a `--set` value the way YAML would (numbers, booleans, lists), `1e-4` included."""
    try:
        return yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text


def line_map(text: str) -> dict[tuple[str, ...], int]:
    """Map each dotted key path to the 1-based line where its key appears."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                path = (*prefix, str(key_node.value))
                lines[path] = key_node.start_mark.line + 1
                walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):  # list items by index, so `metrics.1` has its own line
            for index, item in enumerate(node.value):
                lines[(*prefix, str(index))] = item.start_mark.line + 1
                walk(item, (*prefix, str(index)))

    root = yaml.compose(text, Loader=RecipeLoader)
    if root is not None:
        walk(root, ())
    return lines


def split_override(override: str) -> tuple[tuple[str, ...], str]:
    """`a.b=value` -> (("a", "b"), "value"); RecipeError when it is not KEY=VALUE."""
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise RecipeError(
            f"--set {override!r} is not KEY=VALUE", hint="write it as --set training.learning_rate=1e-4"
        )
    parts = tuple(key.strip().split("."))
    if not all(part.strip() for part in parts):
        raise RecipeError(
            f"--set {override}: the key `{key.strip()}` has an empty part (a doubled, leading or trailing dot)",
            hint="separate keys with single dots, e.g. --set training.learning_rate=1e-4",
        )
    return parts, value


def apply_override(raw: dict[str, Any], override: str) -> tuple[str, ...]:
    """Apply one `--set KEY=VALUE` to the parsed recipe `raw` (sections created as needed); returns the key path."""
    path, value = split_override(override)
    key = ".".join(path)
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"--set {key}: `{part}` is not a section, so it has no keys")
        node = child
    node[path[-1]] = parse_value(value)
    return path


class _Problems:
    """Collects located problems; origins map a key path to `FILE:LINE` or `--set KEY`."""

    def __init__(self, file_label: str, lines: dict[tuple[str, ...], int], overridden: set[tuple[str, ...]]):
        self.file_label = file_label
        self.lines = lines
        self.overridden = overridden
        self.items: list[str] = []

    def where(self, path: tuple[str, ...]) -> str:
        for length in range(len(path), 0, -1):
            prefix = path[:length]
            if prefix in self.overridden:
                return f"--set {'.'.join(prefix)}"
            if prefix in self.lines:
                return f"{self.file_label}:{self.lines[prefix]}"
        return self.file_label

    def add(self, path: tuple[str, ...], message: str) -> None:
        key = ".".join(path) if path else "(recipe)"
        self.items.append(f"{self.where(path)}: {key}: {message}")

    def add_validation_error(
        self, error: ValidationError, raw: Any, prefix: tuple[str, ...] = (), valid=None
    ) -> None:
        """Add pydantic's errors, one per key: union alternatives for the same key are merged."""
        merged: dict[tuple[str, ...], list[dict]] = {}
        for item in error.errors():
            merged.setdefault((*prefix, *_key_path(raw, item["loc"])), []).append(item)
        for path, items in merged.items():
            first = items[0]
            if first["type"] == "extra_forbidden":
                valid_keys = valid(path[:-1]) if valid else []
                close = closest_key(path[-1], [key.split(" ")[0] for key in valid_keys])
                hint = f"; did you mean `{close}`?" if close else ""
                self.add(path, f"unknown key{hint} (valid here: {', '.join(valid_keys)})")
            elif first["type"] == "missing":
                self.add(path, "required key is missing")
            else:
                expected = " or ".join(
                    dict.fromkeys(
                        i["msg"].removeprefix("Value error, ").removeprefix("Input should be ") for i in items
                    )
                )
                self.add(path, f"must be {expected} (got {first.get('input')!r})")


def closest_key(name: str, valid_keys: list[str]) -> str | None:
    """The valid key a typo most likely meant: spelling first, then abbreviations (`rank` -> `r`)."""
    close = did_you_mean(name, valid_keys)
    if close:
        return close[0]
    prefixed = [key for key in valid_keys if name.startswith(key) or key.startswith(name)]
    return max(prefixed, key=len) if prefixed else None


def _key_path(raw: Any, loc: tuple) -> tuple[str, ...]:
    """The recipe keys in a pydantic error location, without union-member tags such as `float`."""
    path: list[str] = []
    node = raw
    for part in loc:
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            path.append(str(part))
            node = node[part]
        elif (
            isinstance(node, dict) and isinstance(part, str) and part.isidentifier() and not path_is_tag(part)
        ):
            path.append(part)  # a missing key
            node = None
    return tuple(path)


def path_is_tag(part: str) -> bool:
    return part in {"float", "int", "bool", "str", "list", "dict", "none"} or part.startswith(
        ("literal[", "constrained-")
    )


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _read_utf8(path: Path, label: str) -> str:
    """The recipe's text; a RecipeError at the first byte that is not UTF-8 (or naming UTF-16) otherwise."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        if data.startswith(_UTF16_BOMS):
            problem = "the file is UTF-16 (it starts with a UTF-16 byte order mark)"
        else:
            problem = f"byte 0x{data[error.start]:02x} at offset {error.start} is not valid UTF-8"
        raise RecipeError(
            f"{label}:{line}: the recipe is not UTF-8 text: {problem}",
            hint="save the recipe as UTF-8 (in most editors: Save with Encoding -> UTF-8)",
        ) from None


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, *, check_paths: bool = True
) -> LoadedRecipe:
    """Read, override and validate a recipe. Raises RecipeError listing every problem with its location."""
    from ftkit.methods.catalog import get_method

    recipe_path = Path(path)
    if not recipe_path.is_file():
        raise RecipeError(
            f"recipe file not found: {recipe_path}", hint="check the path, or run `ls` to see files"
        )
    label = str(recipe_path)
    text = _read_utf8(recipe_path, label)
    try:
        raw = yaml.load(text, Loader=RecipeLoader)  # noqa: S506 - a SafeLoader subclass
        lines = line_map(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        if isinstance(error, AliasExpansionError):
            raise RecipeError(
                f"{where}: {error.problem}",
                hint="write the repeated values out, or use fewer nested aliases (`*name`)",
            ) from None
        raise RecipeError(
            f"{where}: the recipe is not valid YAML: {getattr(error, 'problem', error)}",
            hint="check indentation and quoting around that line",
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{label}:1: a recipe must be a mapping of keys, got {type(raw).__name__}")

    normalize_tracking(raw)  # `tracking: [mlflow]` -> {mlflow: {}}, so `--set tracking.mlflow.x=...` applies
    overridden = {apply_override(raw, override) for override in overrides or []}
    problems = _Problems(label, lines, overridden)

    method_raw = raw.get("method") or {}
    if isinstance(method_raw, str):  # `method: lora` shorthand
        method_raw = raw["method"] = {"name": method_raw}
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as error:
        problems.add_validation_error(error, raw, valid=known_keys)

    method_options: MethodOptions | None = None
    if isinstance(method_raw, dict):
        method_name = method_raw.get("name", "lora")
        try:
            method = get_method(str(method_name))
        except FtkitError as error:
            problems.add(("method", "name"), f"{error.message} — {error.hint}")
        else:
            options = {key: value for key, value in method_raw.items() if key != "name"}
            try:
                method_options = method.parse_options(options)
            except ValidationError as error:
                fields = list(method.options_model.model_fields)
                problems.add_validation_error(
                    error,
                    options,
                    prefix=("method",),
                    valid=lambda _path, fields=fields: (
                        [f"name ({method.name})", *fields] if fields else ["name"]
                    ),
                )

    if recipe is not None and check_paths:
        _check_paths(recipe, recipe_path.parent, problems)
    if recipe is not None:
        _check_metrics(recipe, problems)
    for key_path, message in evaluation_problems(recipe) + preference_problems(recipe) if recipe else []:
        problems.add(key_path, message)
    if recipe is not None:
        for key_path, message in distributed_problems(recipe, recipe_path.parent, check_machine=check_paths):
            problems.add(key_path, message)

    if problems.items:
        count = len(problems.items)
        raise RecipeError(
            f"{label}: {count} problem{'s' if count > 1 else ''} in the recipe",
            problems=problems.items,
            hint="fix the keys above (`ftkit validate` re-checks without training)",
        )
    assert recipe is not None and method_options is not None
    return LoadedRecipe(recipe, method_options, recipe_path.resolve(), text, list(overrides or []))


def _check_metrics(recipe: Recipe, problems: _Problems) -> None:
    """`evaluation.metrics` and `answer_regex` located at their keys (see ftkit.evaluation.scoring)."""
    settings = recipe.evaluation
    if recipe.task == "preference":  # scored by its pairs (evaluation/preference_scores.py), not by metrics
        if settings.metrics != "auto":
            problems.add(("evaluation", "metrics"), "a preference run reports preference_accuracy, logp_margin, "
                         "reward_margin and the objective's loss on its eval pairs; remove `metrics`")  # fmt: skip
        return
    # auto is a valid list; only its answer_regex can be wrong
    names = ["loss"] if settings.metrics == "auto" else settings.metrics
    for path, message in metric_problems(
        names, recipe.task, settings.answer_regex, generate=settings.generate
    ):
        problems.add(("evaluation", *path), message)


def _check_paths(recipe: Recipe, base_dir: Path, problems: _Problems) -> None:
    def resolve(value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base_dir / candidate

    for key in ("train", "eval"):
        value = getattr(recipe.data, key)
        if value is None:
            continue
        if not resolve(value).exists() and not is_hub_dataset_id(value):
            problems.add(("data", key), f"file not found: {resolve(value)}")
        elif kind := special_file_kind(resolve(value)):
            problems.add(("data", key), f"{resolve(value)} is {kind}, not a regular file")

    model = recipe.model
    model_path = resolve(model)
    if model.startswith("run:") or (model_path / "resolved.yaml").is_file():
        return  # an earlier run (ftkit.model_from_run): checked against the registry, which this does not open
    looks_local = model.startswith((".", "/", "~")) or model.endswith(".gguf") or model_path.exists()
    if looks_local:
        if model.endswith(".gguf"):
            if not model_path.is_file():
                problems.add(("model",), f"GGUF file not found: {model_path}")
        elif not model_path.is_dir():
            problems.add(("model",), f"model folder not found: {model_path}")
        elif not (model_path / "config.json").is_file():
            problems.add(
                ("model",), f"{model_path} has no config.json, so it is not a transformers model folder"
            )
    elif not is_hub_model_id(model):
        problems.add(("model",), "not a hub id (owner/name), a local folder or a .gguf file")
