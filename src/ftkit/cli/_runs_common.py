"""Shared pieces of the registry commands (runs, show, log, diff, tag, checkout, rerun, registry).

Imports stay light: typer, rich markup helpers and `ftkit.registry` (standard library only) — never torch.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ftkit.errors import RegistryError

REGISTRY_HELP = "Run registry folder (default: .ftkit/registry under the working directory)."


def registry_option() -> Any:
    """The `--registry DIR` option (env FTKIT_REGISTRY) every registry command takes."""
    return typer.Option(None, "--registry", envvar="FTKIT_REGISTRY", help=REGISTRY_HELP, show_envvar=True)


def json_option() -> Any:
    """The `--json` option: one JSON document on stdout, human text on stderr."""
    return typer.Option(False, "--json", help="Print one JSON document on stdout; human text goes to stderr.")


def open_registry(path: Path | None, create: bool = False):  # noqa: ANN201 - lazy import keeps --help fast
    """Open the registry; read-only commands do not create one."""
    from ftkit.registry.store import RunRegistry

    return RunRegistry.open(path, create=create)


def open_or_none(path: Path | None):  # noqa: ANN201
    """The registry, or None when none exists yet at that path (listing commands show an empty result)."""
    from ftkit.registry.store import RunRegistry, default_registry_path

    root = Path(path) if path is not None else default_registry_path()
    if not (root / ".git").exists() and (not root.exists() or not any(root.iterdir())):
        return None
    return RunRegistry.open(root, create=False)


def open_existing(path: Path | None):  # noqa: ANN201
    """The registry for commands that need recorded runs; RegistryError (exit 2) when there is none."""
    registry = open_or_none(path)
    if registry is None:
        raise no_registry_error(path)
    return registry


def no_registry_error(path: Path | None) -> RegistryError:
    from ftkit.registry.store import default_registry_path

    root = Path(path) if path is not None else default_registry_path()
    return RegistryError(
        f"no registry at {root.absolute()}",
        hint="runs are recorded there by `ftkit run`; pass --registry DIR or set FTKIT_REGISTRY",
    )


def fmt(value: Any) -> str:
    """A compact human form of a metric or config value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (list, dict)):
        import json

        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def fmt_delta(delta: float | None, pct: float | None) -> tuple[str, str]:
    """(Δ, Δ%) strings."""
    if delta is None:
        return "", ""
    d = f"{delta:+.4g}"
    if pct is None:
        return d, ""
    if pct in (float("inf"), float("-inf")):
        return d, "new"
    return d, f"{pct:+.1f}%"


def colour(text: str, verdict: str | None) -> str:
    """Rich markup: green for better, red for worse, plain otherwise (text is escaped)."""
    text = escape(text)
    if verdict == "better":
        return f"[green]{text}[/green]"
    if verdict == "worse":
        return f"[red]{text}[/red]"
    return text


STATUS_STYLE = {"succeeded": "green", "failed": "red", "interrupted": "yellow"}


def status_markup(status: str | None) -> str:
    style = STATUS_STYLE.get(status or "", "")
    text = escape(status or "?")
    return f"[{style}]{text}[/{style}]" if style else text


def ago(iso: str | None) -> str:
    """'3m ago' style age of an ISO time."""
    if not iso:
        return "—"
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = (datetime.now(timezone.utc) - when).total_seconds()
    if seconds < 0:
        return when.strftime("%Y-%m-%d %H:%M")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def short_model(model: str | None, width: int = 32) -> str:
    if not model:
        return "—"
    return model if len(model) <= width else "…" + model[-(width - 1) :]


def styled(text: str, style: str | None) -> Any:
    """Plain text with a rich style (no markup parsing, so nothing needs escaping)."""
    from rich.text import Text

    return Text(text, style=style or "")


def status_text(status: str | None) -> Any:
    """A run status, coloured."""
    return styled(status or "?", STATUS_STYLE.get(status or ""))


def colour_text(text: str, verdict: str | None) -> Any:
    """Green for better, red for worse."""
    return styled(text, {"better": "green", "worse": "red"}.get(verdict or ""))


def table(title: str | None, columns: list[str], rows: list[list[Any]], keep: tuple[int, ...] = (0,)) -> Any:
    """A rich Table of plain-text cells (str, or rich Text for styled ones); print it with Output.print.

    The `keep` columns never wrap or shrink, so ids stay whole. Cells are not parsed as markup (fast, and
    nothing needs escaping).
    """
    from rich.table import Table
    from rich.text import Text

    cells = [[c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in row] for row in rows]
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        if index in keep:
            width = max([len(column)] + [row[index].cell_len for row in cells])
            result.add_column(column, no_wrap=True, min_width=width)
        else:
            result.add_column(column, overflow="fold")
    for row in cells:
        result.add_row(*row)
    return result
