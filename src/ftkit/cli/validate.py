"""`ftkit validate RECIPE`: check a recipe (keys, types, ranges, method options, paths) without training."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option
from ftkit.cli._output import Output


def validate_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. training.learning_rate=1e-4."),
    json_mode: bool = json_option(),
) -> None:
    """Check a recipe without loading any model; exit 2 with every problem located."""
    from ftkit.recipe.load import load_recipe  # lazily: keeps other commands' start-up fast

    output = Output(json_mode)
    loaded = load_recipe(recipe, set_)
    output.emit(
        {
            "valid": True,
            "recipe": str(recipe),
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


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
