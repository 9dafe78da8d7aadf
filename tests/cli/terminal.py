"""Run ftkit in-process as a terminal of a given width would see it, or piped, and read its tables back.

CliRunner's stdout is not a terminal, so `terminal()` sets rich's TTY_COMPATIBLE=1 (the switch README documents)
and strips the colour codes; `piped()` clears every variable that would force the terminal form.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from typer.testing import CliRunner

from ftkit.cli.app import app

ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CLEAR = {
    "TTY_COMPATIBLE": None,
    "FORCE_COLOR": None,
    "NO_COLOR": None,
    "LINES": None,
    "TTY_INTERACTIVE": None,
}


def terminal(args: list[str], width: int, **env: str):
    """(result, stdout lines without colour codes) of `ftkit ARGS` in a terminal `width` columns wide."""
    settings = {**_CLEAR, "COLUMNS": str(width), "TTY_COMPATIBLE": "1", "TERM": "xterm-256color", **env}
    result = CliRunner().invoke(app, args, env=settings, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result, ANSI.sub("", result.stdout).splitlines()


def piped(args: list[str], **env: str):
    """(result, stdout lines) of `ftkit ARGS` with stdout a pipe."""
    result = CliRunner().invoke(app, args, env={**_CLEAR, "COLUMNS": "80", **env}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stdout
    return result, result.stdout.splitlines()


def assert_fits(lines: list[str], width: int) -> None:
    """No line is longer than the terminal (a longer one would wrap on screen)."""
    too_long = [line for line in lines if cell_len(line) > width]
    assert not too_long, f"{len(too_long)} line(s) wider than {width}: {too_long[:3]}"


def sections(lines: list[str]) -> dict[str, list[str]]:
    """Blank-line separated blocks, by their first line (a table's title)."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return {block[0].strip(): block[1:] for block in blocks if block}


def column_starts(header: str) -> dict[str, int]:
    """Where each column starts, from a header line (columns are two or more spaces apart, left aligned)."""
    starts = {match.group(): match.start() for match in re.finditer(r"\S+(?: \S+)*", header)}
    if header[:1] == " ":  # a first column without a title
        starts = {"": 0, **starts}
    return starts


def row_cells(line: str, starts: dict[str, int]) -> dict[str, str]:
    """A row's cells by column title, as shown (cut cells keep their ellipsis)."""
    names, offsets = list(starts), list(starts.values())
    return {
        name: line[offsets[i] : offsets[i + 1] if i + 1 < len(offsets) else None].strip()
        for i, name in enumerate(names)
    }


def shows_enough(shown: str, full: str, at_least: int) -> bool:
    """`shown` is `full`, or a cut of it (ellipsis at the start, middle or end) keeping `at_least` characters."""
    if shown == full:
        return True
    kept = shown.replace("…", "")
    if len(kept) < at_least or "…" not in shown:
        return False
    head, _, tail = shown.partition("…")
    return full.startswith(head) and full.endswith(tail)
