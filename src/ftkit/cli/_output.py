"""The one place that prints.

Human output goes through rich. With --json, exactly one JSON document goes to stdout and everything meant for
people (progress, summaries, warnings) goes to stderr, so `ftkit ... --json | jq` always works.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_stdout = Console(highlight=False, soft_wrap=True)
_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Output:
    """Routes human text and machine JSON. Create one per command invocation."""

    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode

    @property
    def console(self) -> Console:
        """Console for human-readable output: stderr in --json mode, stdout otherwise."""
        return _stderr if self.json_mode else _stdout

    @property
    def is_interactive(self) -> bool:
        return self.console.is_terminal and not self.json_mode

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.console.print(*objects, **kwargs)

    def note(self, text: str) -> None:
        """A human-only line (progress, advice); never pollutes machine output on stdout."""
        self.console.print(text)

    def warn(self, text: str) -> None:
        _stderr.print(f"[yellow]warning:[/yellow] {escape(text)}")

    def table(self, title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.console.print(table)

    def emit(self, payload: Any) -> None:
        """Print the machine-readable result: the single JSON document on stdout in --json mode."""
        if self.json_mode:
            sys.stdout.write(json.dumps(payload, indent=2, default=str, sort_keys=False) + "\n")
            sys.stdout.flush()

    def error(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        _stderr.print(f"[bold red]error:[/bold red] {escape(message)}")
        for problem in problems or []:
            _stderr.print(f"  • {problem}", markup=False)
        if hint:
            _stderr.print(f"[cyan]hint:[/cyan] {escape(hint)}")
