"""What a run reads and writes around its training: the recipe's data as the run reads it, and the output folder
that `ftkit.inference` reloads (split from train/runner.py; both names stay importable from there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftkit import yamlio
from ftkit.data.dataset import RunData, load_run_data
from ftkit.data.readers import data_source
from ftkit.methods.base import Method
from ftkit.recipe.load import LoadedRecipe
from ftkit.registry import testpoints
from ftkit.train import output_files


def load_recipe_data(loaded: LoadedRecipe) -> RunData:
    """The recipe's train and eval data, read, checked and split as the run reads them (errors raise DataError)."""
    data_config = loaded.recipe.data
    base = loaded.base_dir
    return load_run_data(
        data_source(data_config.train, base),  # a local path, or a Hub dataset id kept as given
        data_source(data_config.eval, base) if data_config.eval else None,
        data_config.format,
        data_config.columns,
        data_config.eval_split,
        loaded.recipe.training.seed,
        data_config.skip_invalid_rows,
    )


def save_output(
    method: Method, model: Any, tokenizer: Any, output_dir: Path, resolved: dict, labels: list | None
) -> None:
    """Write a run's output folder: the method's weights, the tokenizer (with the chat template used in
    training), `resolved.yaml` (secrets scrubbed, as in the registry), and `labels.json` for classification.
    `ftkit.inference` reloads it. Files appear only once the whole save succeeded: a failed save (a full disk)
    leaves no partial file (output_files.py)."""
    from ftkit.registry.scrub import scrub_data  # the one scrubber; standard library only

    with output_files.staged(output_dir, "the trained model") as folder:
        method.save(model, folder)
        testpoints.pause_at("final-save")
        tokenizer.save_pretrained(str(folder))
        (folder / "resolved.yaml").write_text(yamlio.dump(scrub_data(resolved)), encoding="utf-8")
        if labels is not None:
            (folder / "labels.json").write_text(json.dumps([str(label) for label in labels]))
