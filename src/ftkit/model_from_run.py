"""A recipe's `model:` naming an earlier run: `model: run:<ref>` or the run's output folder (OUTPUT/<run-id>).

Training then starts from that run's trained weights:

- full and freeze runs save the whole model (config, weights, tokenizer) in their output folder: it is loaded as is;
- adapter runs (lora, dora, qlora, ia3, ...) have their adapter merged into their base, in full precision, saved once
  to `<registry>/.git/ftkit-cache/models/<run-id>/` (never tracked by git) and loaded from there; a new adapter of
  any method trains on top. Methods that cannot merge (prefix, prompt tuning) are refused.

The tokenizer, with the chat template the run trained with, comes along. A run whose output folder is gone is rebuilt
from the registry's objects store (`ftkit.targets`). The run becomes the new run's parent in the registry, and its
resolved recipe keeps `model: run:<full-run-id>`, so a rerun starts from the same weights after a tag moves.

    from ftkit.model_from_run import names_run, start_from_run
    if names_run(loaded.recipe.model, loaded.base_dir):
        loaded, origin = start_from_run(loaded, registry)   # recipe.model is now the folder to load
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftkit.errors import FtkitError, RecipeError

PREFIX = "run:"
_MARK = "ftkit-model-from-run.json"  # written last: a cache folder without it is incomplete


@dataclass
class ModelRun:
    """Where `model:` pointed: the run, what it trained and the folder training loads (`folder`)."""

    ref: str
    run_id: str
    method: str
    base_model: str | None
    task: str
    source: str  # the run's output folder (or its copy rebuilt from the objects store)
    folder: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The facts recorded with the new run (run.json `model_run`)."""
        return {"run": self.run_id, "ref": self.ref, "method": self.method, "base_model": self.base_model,
                "merged": self.folder != self.source, "folder": self.folder}  # fmt: skip


def names_run(model: str, base_dir: Path) -> bool:
    """Whether a recipe's `model:` names an earlier run: `run:<ref>`, or a folder holding ftkit's resolved.yaml."""
    if model.startswith(PREFIX):
        return True
    path = Path(model).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return path.is_dir() and (path / "resolved.yaml").is_file()


def locate_model_run(model: str, base_dir: Path, task: str, registry: Any) -> ModelRun:
    """Find the run `model` names in `registry` (a RunRegistry) and check it can be trained from; FtkitError
    otherwise (the caller locates it at the recipe's `model` line)."""
    from ftkit.errors import ModelError
    from ftkit.targets import _run_output_source, _run_source

    if model.startswith(PREFIX):
        ref = model[len(PREFIX) :].strip()
        if not ref:
            raise ModelError("`run:` names no run", hint="write model: run:<id, name, tag or @latest>")
        run_id = registry.resolve(ref)
        _check_succeeded(registry, run_id)
        source = _run_source(ref, run_id, registry)
    else:
        path = Path(model).expanduser()
        folder = (path if path.is_absolute() else base_dir / path).resolve()
        run_id = folder.name
        runs = {summary["id"]: summary for summary in registry.summaries()}
        if run_id not in runs:
            raise ModelError(
                f"{folder} is an ftkit run output, but its run {run_id} is not in the registry at {registry.root}",
                hint="train from a run the registry records (it becomes the parent): pass --registry with the "
                "registry that ran it, or write the run as model: run:<ref>",
            )
        ref = str(folder)
        _check_succeeded(registry, run_id)
        source = _run_output_source(ref, folder, f"run {run_id}", run_id)
    if _model_kind(source.task or "causal-lm") != _model_kind(task):  # SFT then DPO: both train a causal LM
        raise ModelError(
            f"run {run_id} trained a {source.task} model; this recipe's task is {task}",
            hint=f"set task: {source.task}, or start from a {task} run",
        )
    from ftkit.inference import read_resolved

    method = str((read_resolved(source.path).get("method") or {}).get("name", "lora"))
    return ModelRun(ref, run_id, method, source.base_model, task, source.path)


def _check_succeeded(registry: Any, run_id: str) -> None:
    from ftkit.errors import ModelError

    status = (registry.load_run(run_id).get("run") or {}).get("status") or "?"
    if status != "succeeded":
        raise ModelError(
            f"run {run_id} is {status}: only a succeeded run's weights can be trained from",
            hint=f"pick a succeeded run (`ftkit runs`), or train it again with `ftkit rerun {run_id}`",
        )


def materialize(found: ModelRun, registry: Any) -> str:
    """The folder training loads for `found`: a full/freeze run's output folder, or its adapter merged into its
    base, saved once under the registry's git folder (reused while complete)."""
    from ftkit.errors import MethodError
    from ftkit.methods.catalog import get_method

    method = get_method(found.method)
    if not method.is_adapter:
        return found.source
    if not method.mergeable:
        raise MethodError(
            f"run {found.run_id} trained `{found.method}`, which cannot be merged into its base, so no model "
            "folder can be made from it to train on",
            hint="start from a run of a mergeable method (lora, dora, qlora, ia3; see `ftkit methods`) or a "
            "full/freeze run",
        )
    cache = Path(registry.repo.git_dir) / "ftkit-cache" / "models" / found.run_id
    if (cache / _MARK).is_file():
        return str(cache)
    from ftkit.inference import load_trained_model

    trained = load_trained_model(found.source, merge=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{found.run_id}-", dir=cache.parent))
    try:
        trained.model.save_pretrained(staging)
        trained.tokenizer.save_pretrained(staging)  # with the chat template the run trained with
        mark = {"run": found.run_id, "method": found.method, "base_model": found.base_model}
        (staging / _MARK).write_text(json.dumps(mark, indent=2) + "\n", encoding="utf-8")
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(staging, cache)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(cache)


def model_line(loaded: Any) -> str:
    """`FILE:LINE` (or `--set model`) of the recipe's `model` key, for located errors."""
    from ftkit.recipe.load import line_map, split_override

    if any(split_override(item)[0] == ("model",) for item in loaded.overrides):
        return "--set model"
    line = line_map(loaded.text).get(("model",))
    return f"{loaded.path}:{line}" if line else str(loaded.path)


def located(loaded: Any, error: FtkitError) -> RecipeError:
    """`error` as a RecipeError (exit 2) at the recipe's `model` line."""
    return RecipeError(
        f"{model_line(loaded)}: model: {loaded.recipe.model}: {error.message}",
        hint=error.hint,
        problems=list(error.problems),
    )


def open_registry(loaded: Any, registry_path: Path | None) -> Any:
    """The registry `model: run:...` is looked up in; RecipeError at the `model` line when there is none."""
    from ftkit.errors import RegistryError
    from ftkit.registry.store import RunRegistry, default_registry_path

    root = registry_path if registry_path is not None else default_registry_path()
    try:
        return RunRegistry.open(root, create=False)
    except RegistryError as error:
        raise RecipeError(
            f"{model_line(loaded)}: model: {loaded.recipe.model}: names an earlier run, but there is no run "
            f"registry at {root} to find it in ({error.message})",
            hint="pass --registry with the registry that recorded the run (or set FTKIT_REGISTRY)",
        ) from None


def check_model_run(loaded: Any, registry: Any) -> ModelRun:
    """Locate and check the run the recipe's `model:` names, without loading weights; located RecipeError."""
    try:
        return locate_model_run(loaded.recipe.model, loaded.base_dir, loaded.recipe.task, registry)
    except FtkitError as error:
        raise located(loaded, error) from None


def start_from_run(loaded: Any, registry: Any) -> tuple[Any, ModelRun]:
    """`loaded` with `recipe.model` set to the folder holding the earlier run's trained weights, and that run."""
    found = check_model_run(loaded, registry)
    try:
        found.folder = materialize(found, registry)
    except FtkitError as error:
        raise located(loaded, error) from None
    from dataclasses import replace

    return replace(loaded, recipe=loaded.recipe.model_copy(update={"model": found.folder})), found


def _model_kind(task: str) -> str:
    """The kind of model a task trains: preference and causal-lm runs both train a causal language model."""
    return "causal-lm" if task == "preference" else task
