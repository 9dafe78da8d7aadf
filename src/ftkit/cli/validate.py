"""`ftkit validate RECIPE`: check a recipe (keys, types, ranges, method options, paths) without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output


def validate_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. training.learning_rate=1e-4."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Check a recipe without loading any model; exit 2 with every problem located."""
    from ftkit.recipe.load import load_recipe  # lazily: keeps other commands' start-up fast

    output = Output(json_mode)
    loaded = load_recipe(recipe, set_)
    unchecked = _check_model_run(loaded, registry)
    if unchecked:
        output.warn(unchecked)
    output.emit(
        {
            "valid": True,
            "recipe": str(recipe),
            "unchecked": [unchecked] if unchecked else [],
            "method": loaded.recipe.method.name,
            "resolved": {
                **loaded.recipe.model_dump(mode="json"),
                "method": {
                    "name": loaded.recipe.method.name,
                    **loaded.method_options.model_dump(mode="json"),
                },
            },
        }
    )
    output.note(
        f"[green]✓[/green] {escape(str(recipe))} is valid: {loaded.recipe.task}, method "
        f"{loaded.recipe.method.name}, model {escape(loaded.recipe.model)}"
    )


def _check_model_run(loaded: Any, registry_path: Path | None) -> str | None:
    """`model: run:<ref>` (or a run output folder): the run checked in the registry (located RecipeError when it
    cannot be trained from). Returns what could not be checked when there is no registry; None otherwise."""
    from ftkit.errors import RecipeError
    from ftkit.model_from_run import check_model_run, names_run, open_registry

    if not names_run(loaded.recipe.model, loaded.base_dir):
        return None
    try:
        registry = open_registry(loaded, registry_path)
    except RecipeError as error:
        return f"not checked: {error.message} (`ftkit run` refuses it unless the registry is there)"
    check_model_run(loaded, registry)
    return None


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
