"""Finding methods: the built-ins by name, third-party ones through the `ftkit.methods` entry-point group.

A third-party package declares, in its pyproject.toml:

    [project.entry-points."ftkit.methods"]
    mymethod = "my_package.module:MyMethod"

where MyMethod subclasses `ftkit.methods.base.Method`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from ftkit.errors import MethodError
from ftkit.methods.base import Method

ENTRY_POINT_GROUP = "ftkit.methods"

# name -> "module:Class"; imported lazily so listing methods stays cheap.
BUILTIN_METHODS: dict[str, str] = {
    "lora": "ftkit.methods.lora:LoraMethod",
    "dora": "ftkit.methods.dora:DoraMethod",
    "qlora": "ftkit.methods.qlora:QloraMethod",
    "prefix": "ftkit.methods.prefix:PrefixMethod",
    "prompt": "ftkit.methods.prompt:PromptMethod",
    "ia3": "ftkit.methods.ia3:Ia3Method",
    "full": "ftkit.methods.full:FullMethod",
    "freeze": "ftkit.methods.freeze:FreezeMethod",
}


def _load(target: str) -> type[Method]:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _entry_point_targets() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> list[str]:
    """All known method names: built-ins first, then third-party ones."""
    names = list(BUILTIN_METHODS)
    for name in _entry_point_targets():
        if name not in names:
            names.append(name)
    return names


def get_method(name: str) -> Method:
    """Return an instance of the method called `name`, or raise MethodError listing the valid names."""
    if name in BUILTIN_METHODS:
        return _load(BUILTIN_METHODS[name])()
    third_party = _entry_point_targets().get(name)
    if third_party is not None:
        try:
            method_class = third_party.load()
        except Exception as error:  # a broken plug-in must not crash ftkit
            raise MethodError(
                f"method `{name}` from entry point `{third_party.value}` failed to load: {error}",
                hint="reinstall the package that provides it, or choose another method",
            ) from error
        if not (isinstance(method_class, type) and issubclass(method_class, Method)):
            raise MethodError(
                f"entry point `{third_party.value}` for `{name}` is not an ftkit Method subclass"
            )
        return method_class()
    from ftkit.suggest import did_you_mean

    close = did_you_mean(name, method_names())
    raise MethodError(
        f"unknown method `{name}`" + (f"; did you mean `{close[0]}`?" if close else ""),
        hint=f"valid methods: {', '.join(method_names())} (see `ftkit methods`)",
    )
