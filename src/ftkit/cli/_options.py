"""The options several commands share, declared once: `--json`, `--registry DIR`, `--wide`."""

from __future__ import annotations

from typing import Any

import typer

REGISTRY_HELP = "Run registry folder (default: .ftkit/registry under the working directory)."


def registry_option() -> Any:
    """The `--registry DIR` option (env FTKIT_REGISTRY) every command that reads or records runs takes."""
    return typer.Option(None, "--registry", envvar="FTKIT_REGISTRY", help=REGISTRY_HELP, show_envvar=True)


def json_option() -> Any:
    """The `--json` option: one JSON document on stdout, human text on stderr."""
    return typer.Option(False, "--json", help="Print one JSON document on stdout; human text goes to stderr.")


def wide_option() -> Any:
    """The `--wide` option: every column at full width, even past the terminal's edge."""
    return typer.Option(
        False,
        "--wide",
        "-w",
        help="Show every column in full, even wider than the terminal (pipe to `less -S`).",
    )
