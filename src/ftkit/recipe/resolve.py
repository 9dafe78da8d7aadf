"""The resolved recipe: every default and `auto` filled in, and the config hash that identifies what was trained.

The resolved recipe is what the registry records as `resolved.yaml`; it is itself a valid recipe, so a run can be
re-run from it anywhere (local paths are made absolute, hub ids stay as given).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ftkit.recipe import auto_rules
from ftkit.recipe.auto_rules import Choice

if TYPE_CHECKING:
    from ftkit.methods.base import Method
    from ftkit.recipe.load import LoadedRecipe
    from ftkit.recipe.schema import Recipe

# Top-level keys left out of the config hash: naming a run or moving its output does not change what is trained.
CONFIG_HASH_IGNORED_KEYS = ("name", "output", "tracking")  # where a run reports to changes no weight
# Training keys left out too: when and how many checkpoints are written does not change the trained weights, so a
# run resumed with other checkpoint settings, and runs recorded before these keys existed, keep their hash.
CONFIG_HASH_IGNORED_TRAINING_KEYS = ("save_every", "keep_checkpoints")


def resolve_recipe(
    loaded: LoadedRecipe,
    method: Method,
    *,
    data_format: str,
    train_rows: int,
    decided: Mapping[str, Any],
    choices: Mapping[str, Choice] | None = None,
) -> dict[str, Any]:
    """The recipe with every default and `auto` filled in: what actually ran, re-runnable as a recipe.

    `data_format` is the detected data format, `train_rows` the number of training rows read (before rendering),
    `decided` the training settings chosen for this machine and model (precision, gradient_checkpointing, device,
    padding_free; see `TrainingPlan.decided`), `choices` the `auto` values the runner measured and chose, by dotted
    key (`ftkit.train.auto_values`). An `auto` value without a choice takes the rule's data-only answer
    (`data_only_choices`). Given values are kept exactly.
    """
    resolved = loaded.recipe.model_dump(mode="json")
    options = loaded.method_options.model_dump(mode="json")
    fallback = data_only_choices(loaded.recipe, options, method, train_rows)
    chosen = {**fallback, **(choices or {})}
    training = resolved["training"]
    for key, choice in chosen.items():
        section, name = key.split(".", 1)
        holder = training if section == "training" else options
        if name == "max_steps" or holder.get(name) == "auto":
            holder[name] = (
                float(choice.value) if name == "epochs" else choice.value
            )  # epochs read back as floats
    training.update(decided)
    resolved["method"] = {"name": method.name, **options}
    resolved["data"]["format"] = data_format
    # Local paths become absolute so the resolved recipe re-runs from anywhere; hub ids stay as they are.
    for section, key in (("data", "train"), ("data", "eval"), (None, "model")):
        holder = resolved[section] if section else resolved
        if holder.get(key) and loaded.resolve_path(holder[key]).exists():
            holder[key] = str(loaded.resolve_path(holder[key]))
    resolved["output"] = str(loaded.resolve_path(loaded.recipe.output))
    if (
        resolved.get("distributed") is None
    ):  # absent, as before the key existed: one-process hashes are unchanged
        resolved.pop("distributed", None)
    if resolved.get("task") != "preference":  # absent from other tasks, as before the key existed
        resolved.pop("preference", None)
    if not any((resolved.get("tracking") or {}).values()):  # absent when no tracker is on, as before the key
        resolved.pop("tracking", None)
    return resolved


def data_only_choices(
    recipe: Recipe, options: Mapping[str, Any], method: Method, train_rows: int
) -> dict[str, Choice]:
    """The `auto` values of `recipe` that the data size alone decides (epochs, learning rate for an unmeasured
    model, LoRA rank, batch without a memory probe), by dotted key. max_seq_len without measured lengths keeps the
    length `ftkit data check` assumes. Used for dry runs and as the fallback of `resolve_recipe`."""
    training, task = recipe.training, recipe.task
    found: dict[str, Choice] = {}
    if training.epochs == "auto":
        found["training.epochs"] = auto_rules.epochs(train_rows, task)
    if training.learning_rate == "auto":
        found["training.learning_rate"] = auto_rules.learning_rate(
            method.name, None, task, method.default_learning_rate
        )
    if options.get("r") == "auto":
        found["method.r"] = auto_rules.lora_rank(train_rows)
    found.update(
        batch_choices(training.batch_size, training.grad_accum, train_rows, task, lambda _batch: True)
    )
    if training.max_seq_len == "auto":
        found["training.max_seq_len"] = Choice(
            auto_rules.UNMEASURED_MAX_SEQ_LEN,
            auto_rules.SEQ_RULE,
            "token lengths not measured (no tokenizer): the default",
        )
    return found


def batch_choices(
    batch_size: int | str,
    grad_accum: int | str,
    train_rows: int,
    task: str,
    fits: Callable[[int], bool],
    **kw: Any,
) -> dict[str, Choice]:
    """Choices for `training.batch_size` and `training.grad_accum` where they are `auto`. A given batch_size is
    the effective batch (grad_accum auto → 1); an auto batch_size fills the effective batch with the largest
    micro-batch that `fits` (auto_rules.batch_and_accum). `kw` goes to batch_and_accum (`cheaper`)."""
    if batch_size != "auto":
        if grad_accum != "auto":
            return {}
        return {
            "training.grad_accum": Choice(
                1, auto_rules.BATCH_RULE, f"batch_size {batch_size} given: it is the effective batch"
            )
        }
    target = auto_rules.effective_batch(train_rows, task)
    fixed = None if grad_accum == "auto" else int(grad_accum)
    split = auto_rules.batch_and_accum(target.value, fits, fixed_accum=fixed, **kw)
    micro, accum = split.value
    evidence = f"{target.evidence}; {split.evidence}"
    found = {"training.batch_size": Choice(micro, split.rule, evidence)}
    if fixed is None:
        found["training.grad_accum"] = Choice(accum, split.rule, evidence)
    return found


def config_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 (hex) of the resolved recipe without the keys that do not change training (name, output, the
    checkpoint settings)."""
    relevant = {key: value for key, value in resolved.items() if key not in CONFIG_HASH_IGNORED_KEYS}
    if isinstance(relevant.get("training"), Mapping):
        relevant["training"] = {
            key: value
            for key, value in relevant["training"].items()
            if key not in CONFIG_HASH_IGNORED_TRAINING_KEYS
        }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()
