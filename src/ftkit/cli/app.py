"""The Typer application and the process entry point.

Each command lives in its own module with a `register(app)` function. `main()` maps FtkitError to a message, a hint
and an exit code; a traceback reaches the user only with FTKIT_DEBUG=1. Importing this module must stay cheap:
no torch, transformers or datasets at module level anywhere under `ftkit.cli`.
"""

from __future__ import annotations

import importlib
import os

import typer
from typer.core import TyperGroup

from ftkit import __version__
from ftkit.cli._output import Output
from ftkit.errors import ExitCode, FtkitError

# Typer vendors its own click; find its exception base class without importing private modules.
_CLICK_EXCEPTION = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


class _FtkitGroup(TyperGroup):
    """Turns ftkit's errors into messages and exit codes for every command, under `main()` and test runners alike."""

    def invoke(self, ctx):  # noqa: ANN001 - click's signature
        debug = os.environ.get("FTKIT_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except FtkitError as error:
            if debug:
                raise
            Output().error(error.message, error.hint, error.problems)
            raise typer.Exit(int(error.exit_code)) from None
        except KeyboardInterrupt:
            Output().error("interrupted by the user")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, _CLICK_EXCEPTION):
            raise
        except Exception as error:
            if debug:
                raise
            Output().error(
                f"unexpected internal error: {type(error).__name__}: {error}",
                hint="re-run with FTKIT_DEBUG=1 for the full traceback, and report it if it persists",
            )
            raise typer.Exit(int(ExitCode.RUN_FAILED)) from None


app = typer.Typer(
    name="ftkit",
    cls=_FtkitGroup,
    help="Fine-tune models you own from a YAML recipe, with every run versioned in a git registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per command or command group; each exposes register(app).
COMMAND_MODULES = (
    "ftkit.cli.validate",
    "ftkit.cli.run",
    "ftkit.cli.data",
    "ftkit.cli.runs",
    "ftkit.cli.show",
    "ftkit.cli.log",
    "ftkit.cli.diff",
    "ftkit.cli.tag",
    "ftkit.cli.checkout",
    "ftkit.cli.rerun",
    "ftkit.cli.registry_cmd",
    "ftkit.cli.methods",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ftkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Fine-tune models you own from a YAML recipe, with every run versioned in a git registry."""


for _module_name in COMMAND_MODULES:
    importlib.import_module(_module_name).register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ftkit")
