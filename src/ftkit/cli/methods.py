"""`ftkit methods` and `ftkit methods show NAME`: the fine-tuning methods, their costs and their options.

Only method classes are imported (they import torch and peft lazily), so this stays fast and works without a GPU.
"""

from __future__ import annotations

import importlib.util
import types
import typing
from typing import Any

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, wide_option
from ftkit.cli._output import Output
from ftkit.cli.table_fit import Column
from ftkit.errors import MethodError

methods_app = typer.Typer(
    help="List fine-tuning methods; `ftkit methods show NAME` prints a method's options.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _source(name: str) -> str:
    from ftkit.methods.catalog import BUILTIN_METHODS

    return "built-in" if name in BUILTIN_METHODS else "plug-in"


def method_summary(method: Any) -> dict[str, Any]:
    requirements = [{"module": module, "installed": _installed(module)} for module in method.requires]
    missing = [item["module"] for item in requirements if not item["installed"]]
    return {
        "name": method.name,
        "description": method.description,
        "mergeable": bool(method.mergeable),
        "adapter": bool(method.is_adapter),
        "requirements": requirements,
        "ready": not missing,
        "install": (method.install_hint or f"pip install {' '.join(missing)}") if missing else None,
        "typical_trainable": method.typical_trainable,
        "default_learning_rate": method.default_learning_rate,
        "source": _source(method.name),
    }


def type_name(annotation: Any) -> str:
    """A readable type: `int | auto`, `list[str] | null`, `nf4 | fp4`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:  # a constrained type (int >= 1): its base type
        return type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(str(value) for value in typing.get_args(annotation))
    if origin in (list, tuple, set, dict):
        args = ", ".join(type_name(arg) for arg in typing.get_args(annotation))
        return f"{origin.__name__}[{args}]" if args else origin.__name__
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def method_options(method: Any) -> list[dict[str, Any]]:
    # Imported here, not at module level, so that `ftkit methods --help` stays fast.
    from pydantic_core import PydanticUndefined

    options = []
    for name, field in method.options_model.model_fields.items():
        required = field.is_required()
        if required:
            default = None
        elif field.default_factory is not None:
            default = field.default_factory()
        else:
            default = None if field.default is PydanticUndefined else field.default
        options.append(
            {
                "name": name,
                "type": type_name(field.annotation),
                "default": default,
                "required": required,
                "help": field.description or "",
            }
        )
    return options


def auto_rules(method: Any) -> list[dict[str, str]]:
    """The `auto` rules that apply to `method`: [{key, rule}] (recipe/auto_rules.py states them)."""
    from ftkit.recipe.auto_rules import stated_rules

    return [{"key": key, "rule": rule} for key, rule in stated_rules(method.name).items()]


def _all_methods(output: Output) -> list[Any]:
    from ftkit.methods.catalog import get_method, method_names

    methods = []
    for name in method_names():
        try:
            methods.append(get_method(name))
        except MethodError as error:  # a broken plug-in is reported, never fatal to the listing
            output.warn(f"{error.message}")
    return methods


def _needs(item: dict[str, Any]) -> list[str]:
    return [
        f"{req['module']} ({'installed' if req['installed'] else 'missing'})" for req in item["requirements"]
    ]


@methods_app.callback()
def list_methods(
    ctx: typer.Context,
    wide: bool = wide_option(),
    json_mode: bool = json_option(),
) -> None:
    """List the fine-tuning methods: what each is, whether it merges, what it needs, how much it trains."""
    if ctx.invoked_subcommand is not None:
        return
    output = Output(json_mode)
    summaries = [method_summary(method) for method in _all_methods(output)]
    output.emit(summaries)
    if json_mode:
        return
    rows = [
        [
            item["name"] if item["source"] == "built-in" else f"{item['name']} (plug-in)",
            item["description"],
            "yes" if item["mergeable"] else "no",
            _needs(item),
            item["typical_trainable"],
        ]
        for item in summaries
    ]
    columns = [
        Column("method", key=True),
        Column("mergeable", key=True),
        Column("trains", key=True),
        Column(
            "needs",
            show=lambda needs: ", ".join(n.removesuffix(" (installed)") for n in needs) or "—",
            min_width=12,
            drop=1,
        ),
        Column("description", min_width=24),
    ]
    order = [0, 2, 4, 3, 1]  # the columns above, as the row lists them
    output.table(None, columns, [[row[i] for i in order] for row in rows], wide=wide)
    output.hint("options of one method: ftkit methods show NAME")


@methods_app.command("show")
def show_method(
    name: str = typer.Argument(..., help="Method name, e.g. lora."),
    wide: bool = wide_option(),
    json_mode: bool = json_option(),
) -> None:
    """Show one method's options with their types, defaults and help."""
    from ftkit.methods.catalog import get_method

    output = Output(json_mode)
    method = get_method(name)
    payload = {**method_summary(method), "options": method_options(method), "auto_rules": auto_rules(method)}
    output.emit(payload)
    if json_mode:
        return
    facts = [
        ["mergeable", "yes" if payload["mergeable"] else "no"],
        ["trains", payload["typical_trainable"] or None],
        ["default learning rate", payload["default_learning_rate"]],
        ["needs", ", ".join(_needs(payload)) or None],
    ]
    if payload["install"]:
        facts.append(["install", payload["install"]])
    if output.is_terminal:  # a sentence: it wraps rather than being cut
        output.print(f"[bold]{escape(method.name)}[/bold]: {escape(method.description)}", soft_wrap=False)
    else:
        facts.insert(0, ["description", method.description])
    output.table(None if output.is_terminal else f"method: {method.name}", [Column(key=True), ""], facts)
    if payload["options"]:
        output.table(
            "Options",
            [
                Column("option", key=True),
                Column("type", min_width=12),
                Column("default", min_width=8),
                Column("help", min_width=24),
            ],
            [
                [
                    item["name"],
                    item["type"],
                    "(required)" if item["required"] else repr(item["default"]),
                    item["help"],
                ]
                for item in payload["options"]
            ],
            wide=wide,
        )
    else:
        output.hint("no options of its own")
    output.table(
        "Auto rules (what `auto` chooses; each choice is shown and recorded with its evidence)",
        [Column("key", key=True), Column("rule", min_width=24)],
        [[item["key"], item["rule"]] for item in payload["auto_rules"]],
        wide=wide,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(methods_app, name="methods")
