"""The one place that prints.

Human output goes through rich. With --json, exactly one JSON document goes to stdout and everything meant for
people (progress, summaries, warnings) goes to stderr, so `ftkit ... --json | jq` always works. Tables fit the
terminal (see table_fit.py); when the human output is not a terminal they print in a plain tab-separated form, and
hints move to stderr so the pipe carries data only. rich decides what a terminal is: `TTY_COMPATIBLE=1` forces the
terminal form through a pipe (tests use it), `TTY_COMPATIBLE=0` the plain form in a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Console
from rich.markup import escape

from ftkit.registry.scrub import scrub_text

if TYPE_CHECKING:
    from ftkit.cli.table_fit import Column


def _console(stderr: bool) -> Console:
    # Made per command, not at import: COLUMNS and the terminal are read when the command runs.
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


class Output:
    """Routes human text and machine JSON. Create one per command invocation."""

    # Set once this command has printed its JSON document: an error raised after it (a failed `diff --fail-on`
    # gate) must not add a second document to stdout. The CLI group resets it for every command.
    document_emitted: ClassVar[bool] = False

    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode
        self._stdout: Console | None = None
        self._stderr: Console | None = None
        # Anything on the human console yet: a titled table then opens with a blank line.
        self._printed = False

    @property
    def stderr(self) -> Console:
        """The console on stderr (warnings, errors, and human text in --json mode)."""
        if self._stderr is None:
            self._stderr = _console(stderr=True)
        return self._stderr

    @property
    def console(self) -> Console:
        """Console for human-readable output: stderr in --json mode, stdout otherwise."""
        if self.json_mode:
            return self.stderr
        if self._stdout is None:
            self._stdout = _console(stderr=False)
        return self._stdout

    @property
    def is_terminal(self) -> bool:
        """Whether human output goes to a terminal (tables fit its width) rather than a pipe (plain form)."""
        return self.console.is_terminal

    @property
    def is_interactive(self) -> bool:
        return self.console.is_terminal and not self.json_mode

    @property
    def width(self) -> int:
        """Columns of the human-output terminal."""
        return self.console.width

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self._printed = True
        self.console.print(*objects, **kwargs)

    def note(self, text: str) -> None:
        """A human-only line (progress, advice); never pollutes machine output on stdout. Secrets are masked."""
        self._printed = True
        self.console.print(scrub_text(text))

    def hint(self, text: str) -> None:
        """Advice about the output (`--all shows them`): dim in a terminal, on stderr when stdout is piped."""
        text = scrub_text(text)
        if self.is_terminal:
            self._printed = True
            self.console.print(f"[dim]{escape(text)}[/dim]", soft_wrap=False)  # wrapped at the width, by word
        else:
            self.stderr.print(text, markup=False)

    def warn(self, text: str) -> None:
        """A warning on stderr; secrets in it are masked (registry.scrub), markup in it is printed as is."""
        self.stderr.print(f"[yellow]warning:[/yellow] {escape(scrub_text(text))}")

    def line(self, text: Any, plain: str | None = None) -> None:
        """One line that must not wrap: cut with an ellipsis at the terminal's width; `plain` (default: the text
        itself) when piped. `text` is a string (not markup) or rich Text."""
        if self.is_terminal:
            self._printed = True
            self.console.print(
                text, markup=False, no_wrap=True, overflow="ellipsis", soft_wrap=False, crop=True
            )
        else:
            self._write(plain if plain is not None else getattr(text, "plain", text))

    def table(
        self,
        title: str | None,
        columns: Sequence[Column | str],
        rows: Sequence[Sequence[Any]],
        *,
        wide: bool = False,
    ) -> None:
        """Print a table: fitted to the terminal (all columns, full width with `wide`), or plain when piped.

        Cells are values or rich Text (never markup); see table_fit.Column for how each column fits.
        """
        from ftkit.cli import table_fit

        if not self.is_terminal:
            for text in table_fit.plain_lines(title, columns, rows):
                self._write(text)
            return
        from rich.text import Text

        table, hidden = table_fit.terminal_table(columns, rows, self.width, wide=wide)
        if self._printed and title:
            self.console.print()
        if title:
            self.line(Text(title, style="bold"))
        console = self.console
        if wide:  # wider than the terminal on purpose: the user asked for every column at full width
            measured = table.__rich_measure__(console, console.options.update_width(10**6)).maximum
            console = Console(
                file=console.file,
                width=max(console.width, measured),
                color_system=console.color_system,
                force_terminal=True,
                highlight=False,
                emoji=False,
            )
        console.print(table)
        self._printed = True
        if hidden:
            self.hint(f"hidden to fit: {', '.join(hidden)} (--wide shows them)")

    def _write(self, text: str) -> None:
        file = self.console.file
        file.write(text + "\n")
        file.flush()

    def emit(self, payload: Any) -> None:
        """Print the machine-readable result: the single JSON document on stdout in --json mode, secrets masked."""
        if self.json_mode:
            # Scrubbing the serialized text is one pass however large the document; a masked value stays valid
            # JSON because the masks contain no quote or backslash.
            sys.stdout.write(scrub_text(json.dumps(payload, indent=2, default=str, sort_keys=False)) + "\n")
            sys.stdout.flush()
            Output.document_emitted = True

    def error(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        """An error on stderr: message, located problems, hint; secrets masked, markup printed as is."""
        self.stderr.print(f"[bold red]error:[/bold red] {escape(scrub_text(message))}")
        for problem in problems or []:
            self.stderr.print(f"  • {scrub_text(problem)}", markup=False)
        if hint:
            self.stderr.print(f"[cyan]hint:[/cyan] {escape(scrub_text(hint))}")
