"""The run's output folder, checked before anything slow: a folder that cannot be written is found before the
model is loaded and the base evaluated, not when the weights are saved."""

from __future__ import annotations

import os
from pathlib import Path

from ftkit.errors import RecipeError
from ftkit.recipe.load import LoadedRecipe, line_map, split_override


def check_output_writable(loaded: LoadedRecipe) -> Path:
    """The recipe's `output` folder, made absolute; RecipeError (exit 2) at the `output` key when ftkit could
    not create it or write into it (a read-only folder or file system, a file in the way)."""
    folder = loaded.resolve_path(loaded.recipe.output)
    problem = _why_unwritable(folder)
    if problem is None:
        return folder
    raise RecipeError(
        f"{_where_output(loaded)}: output: {folder}: {problem}",
        hint="point `output` at a folder you can write (e.g. outputs/), or make this one writable; "
        "nothing was loaded or trained",
    )


def _why_unwritable(folder: Path) -> str | None:
    existing = folder
    while not existing.exists() and existing != existing.parent:  # the folder is created with its parents
        if existing.is_symlink():
            return f"cannot be created: {existing} is a broken symbolic link"
        existing = existing.parent
    if not existing.is_dir():
        return "is a file, not a folder" if existing == folder else f"cannot be created: {existing} is a file"
    # access() reports a read-only file system (EROFS) and an immutable folder (EPERM) even to root
    if not os.access(existing, os.W_OK | os.X_OK):
        return "is not writable" if existing == folder else f"cannot be created: {existing} is not writable"
    return None


def _where_output(loaded: LoadedRecipe) -> str:
    """`--set output` when an override set it, else `RECIPE:LINE` of the `output` key (the recipe alone when the
    key is absent and the default applies)."""
    if any(split_override(item)[0] == ("output",) for item in loaded.overrides):
        return "--set output"
    line = line_map(loaded.text).get(("output",))
    return f"{loaded.path}:{line}" if line else str(loaded.path)
