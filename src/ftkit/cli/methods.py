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

from ftkit.cli._output import Output
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
    from ftkit.methods.registry import BUILTIN_METHODS

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


def _all_methods(output: Output) -> list[Any]:
    from ftkit.methods.registry import get_method, method_names

    methods = []
    for name in method_names():
        try:
            methods.append(get_method(name))
        except MethodError as error:  # a broken plug-in is reported, never fatal to the listing
            output.warn(f"{error.message}")
    return methods


@methods_app.callback()
def list_methods(
    ctx: typer.Context,
    json_mode: bool = typer.Option(False, "--json", help="Print a JSON list on stdout."),
) -> None:
    """List the fine-tuning methods: what each is, whether it merges, what it needs, how much it trains."""
    if ctx.invoked_subcommand is not None:
        return
    output = Output(json_mode)
    summaries = [method_summary(method) for method in _all_methods(output)]
    output.emit(summaries)
    if json_mode:
        return
    rows = []
    for item in summaries:
        needs = ", ".join(
            f"{req['module']} ({'installed' if req['installed'] else 'missing'})"
            for req in item["requirements"]
        )
        name = item["name"] if item["source"] == "built-in" else f"{item['name']} (plug-in)"
        cells = [
            name,
            item["description"],
            "yes" if item["mergeable"] else "no",
            needs,
            item["typical_trainable"],
        ]
        rows.append([escape(cell) if cell else "—" for cell in cells])
    output.table("Fine-tuning methods", ["method", "description", "mergeable", "needs", "trains"], rows)
    output.note("options of one method: ftkit methods show NAME")


@methods_app.command("show")
def show_method(
    name: str = typer.Argument(..., help="Method name, e.g. lora."),
    json_mode: bool = typer.Option(False, "--json", help="Print a JSON object on stdout."),
) -> None:
    """Show one method's options with their types, defaults and help."""
    from ftkit.methods.registry import get_method

    output = Output(json_mode)
    method = get_method(name)
    payload = {**method_summary(method), "options": method_options(method)}
    output.emit(payload)
    if json_mode:
        return
    output.note(f"[bold]{method.name}[/bold]: {method.description}")
    facts = [
        f"mergeable: {'yes' if payload['mergeable'] else 'no'}",
        f"trains: {payload['typical_trainable'] or '—'}",
        f"default learning rate: {payload['default_learning_rate']:g}",
    ]
    if payload["requirements"]:
        facts.append(
            "needs: "
            + ", ".join(
                f"{req['module']} ({'installed' if req['installed'] else 'missing'})"
                for req in payload["requirements"]
            )
        )
    output.note(" · ".join(facts))
    if payload["install"]:
        output.note(f"install: {escape(payload['install'])}")
    if payload["options"]:
        output.table(
            f"method: {method.name} options",
            ["option", "type", "default", "help"],
            [
                [
                    escape(cell)
                    for cell in (
                        item["name"],
                        item["type"],
                        "(required)" if item["required"] else repr(item["default"]),
                        item["help"],
                    )
                ]
                for item in payload["options"]
            ],
        )
    else:
        output.note("no options of its own")


def register(app: typer.Typer) -> None:
    app.add_typer(methods_app, name="methods")
