"""The resolved recipe: every default and `auto` filled in, and the config hash that identifies what was trained.

The resolved recipe is what the registry records as `resolved.yaml`; it is itself a valid recipe, so a run can be
re-run from it anywhere (local paths are made absolute, hub ids stay as given).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftkit.methods.base import Method
    from ftkit.recipe.load import LoadedRecipe

# Top-level keys left out of the config hash: naming a run or moving its output does not change what is trained.
CONFIG_HASH_IGNORED_KEYS = ("name", "output")


def resolve_recipe(
    loaded: LoadedRecipe,
    method: Method,
    *,
    data_format: str,
    train_rows: int,
    decided: Mapping[str, Any],
) -> dict[str, Any]:
    """The recipe with every default and `auto` filled in: what actually ran, re-runnable as a recipe.

    `data_format` is the detected data format, `train_rows` the number of training rows read (before rendering),
    `decided` the training settings chosen for this machine and model (precision, gradient_checkpointing, device,
    padding_free; see `TrainingPlan.decided`).
    """
    resolved = loaded.recipe.model_dump(mode="json")
    training = resolved["training"]
    if training["epochs"] == "auto":
        training["epochs"] = 3.0 if train_rows < 1000 else 1.0  # a float, as the schema reads it back
    if training["learning_rate"] == "auto":
        training["learning_rate"] = method.default_learning_rate
    if training["batch_size"] == "auto":
        training["batch_size"] = max(1, min(8, train_rows))
    training.update(decided)
    resolved["method"] = {"name": method.name, **loaded.method_options.model_dump(mode="json")}
    resolved["data"]["format"] = data_format
    # Local paths become absolute so the resolved recipe re-runs from anywhere; hub ids stay as they are.
    for section, key in (("data", "train"), ("data", "eval"), (None, "model")):
        holder = resolved[section] if section else resolved
        if holder.get(key) and loaded.resolve_path(holder[key]).exists():
            holder[key] = str(loaded.resolve_path(holder[key]))
    resolved["output"] = str(loaded.resolve_path(loaded.recipe.output))
    return resolved


def config_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 (hex) of the resolved recipe without the keys that do not change training (name, output)."""
    relevant = {key: value for key, value in resolved.items() if key not in CONFIG_HASH_IGNORED_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()
