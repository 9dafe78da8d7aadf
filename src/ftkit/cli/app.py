"""The Typer application and the process entry point.

Each command lives in its own module with a `register(app)` function. The root group imports a command's module
only when that command runs (or its help is asked for); `ftkit --help` lists commands from the static COMMANDS
table. `main()` maps FtkitError to a message, a hint and an exit code; a traceback reaches the user only with
FTKIT_DEBUG=1. Importing this module must stay cheap: no torch, transformers, datasets or pydantic at module level
anywhere under `ftkit.cli`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from ftkit import __version__
from ftkit.errors import ExitCode, FtkitError

# Typer vendors its own click; find its exception base class without importing private modules.
_CLICK_EXCEPTION = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


class CommandEntry(NamedTuple):
    """Where a top-level command lives and the first sentence of its help, as `ftkit --help` lists it."""

    module: str
    help: str


# The command list `ftkit --help` prints without importing any command module, in display order. Each module
# exposes register(app); tests/cli/test_startup.py checks this table against the commands the modules register.
COMMANDS: dict[str, CommandEntry] = {
    "validate": CommandEntry(
        "ftkit.cli.validate", "Check a recipe without loading any model; exit 2 with every problem located."
    ),
    "run": CommandEntry("ftkit.cli.run", "Fine-tune a model from a recipe and record the run."),
    "tune": CommandEntry(
        "ftkit.cli.tune",
        "Fine-tune with no recipe: detect the task, choose every setting by a stated rule, train, review.",
    ),
    "resume": CommandEntry(
        "ftkit.cli.resume",
        "Continue an interrupted, failed or lost run from its last complete checkpoint, under the same run id.",
    ),
    "runs": CommandEntry(
        "ftkit.cli.runs",
        "List recorded runs, newest first; failed, interrupted and lost runs are hidden unless --all.",
    ),
    "show": CommandEntry(
        "ftkit.cli.show",
        "Show one run: status, recipe facts, metrics, data, environment, artifacts and lineage.",
    ),
    "review": CommandEntry(
        "ftkit.cli.review",
        "Review a run: findings with their evidence and a ready command each, or one line when it is healthy.",
    ),
    "generate": CommandEntry(
        "ftkit.cli.generate",
        "Generate answers to prompts with a registry run or any model (batched; JSONL with --json).",
    ),
    "chat": CommandEntry(
        "ftkit.cli.chat",
        "Talk with a registry run or any model in the terminal: multi-turn, streamed, /reset and /exit.",
    ),
    "eval": CommandEntry(
        "ftkit.cli.eval",
        "Evaluate a run or model on a data file and record the result in the registry.",
    ),
    "log": CommandEntry(
        "ftkit.cli.log",
        "Show the history of runs, newest first, with what changed from each run to the next.",
    ),
    "logs": CommandEntry(
        "ftkit.cli.logs",
        "Print a run's events (time, kind, message; JSON lines with --json); -f follows a run in progress.",
    ),
    "diff": CommandEntry(
        "ftkit.cli.diff",
        "Compare two runs: changed config keys, metrics side by side with deltas, provenance differences.",
    ),
    "tag": CommandEntry("ftkit.cli.tag", "Tag a run; an existing tag of that name moves to this run."),
    "untag": CommandEntry("ftkit.cli.tag", "Remove a tag (the run itself stays)."),
    "checkout": CommandEntry(
        "ftkit.cli.checkout",
        "Write the recipe of a run (as written, with its --set overrides; or --resolved) to edit and run again.",
    ),
    "rerun": CommandEntry(
        "ftkit.cli.rerun",
        "Run again from a recorded run's resolved recipe (with --set changes); the new run records it as parent.",
    ),
    "plot": CommandEntry(
        "ftkit.cli.plot",
        "Draw runs' curves (train and eval loss by default) into one chart: a self-contained HTML file with an SVG "
        "chart, or a 1000x600 PNG drawn by matplotlib.",
    ),
    "ui": CommandEntry(
        "ftkit.cli.ui",
        "Serve the local web UI: one-click fine-tuning jobs, live runs, compare and a playground.",
    ),
    "export": CommandEntry(
        "ftkit.cli.export",
        "Export a run's model (merged, or its adapter) with a model card, loadable without ftkit.",
    ),
    "data": CommandEntry("ftkit.cli.data", "Check data files before training."),
    "plan": CommandEntry(
        "ftkit.cli.plan",
        "Estimate memory and time per candidate method before training; exit 2 with cheaper alternatives.",
    ),
    "registry": CommandEntry(
        "ftkit.cli.registry_cmd",
        "Share the run registry through a git remote, and check it (push, pull, remote, verify, repair).",
    ),
    "methods": CommandEntry(
        "ftkit.cli.methods", "List fine-tuning methods; `ftkit methods show NAME` prints a method's options."
    ),
}


def load_commands(module_name: str) -> dict[str, Any]:
    """Import one command module and return the click commands its register(app) adds, by name."""
    holder = typer.Typer(rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False)
    importlib.import_module(module_name).register(holder)
    return dict(typer.main.get_group(holder).commands)


class _LazyCommands(MutableMapping):
    """The root group's command mapping: names come from COMMANDS, a command's module is imported on lookup."""

    def __init__(self, added: dict[str, Any] | None = None) -> None:
        self._loaded: dict[str, Any] = dict(added or {})

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded.update(load_commands(COMMANDS[name].module))
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._loaded))


def _wants_json(ctx) -> bool:  # noqa: ANN001 - a click Context
    """Whether the subcommand line asked for --json; read at group level, where its parsed params don't exist."""
    args = list(ctx.args)
    if "--" in args:  # after `--` a "--json" is a positional value, not the option
        args = args[: args.index("--")]
    return "--json" in args


def _report(
    message: str,
    hint: str | None = None,
    problems: list[str] | None = None,
    *,
    exit_code: int,
    json_mode: bool = False,
    kind: str = "error",
) -> None:
    """The error for people on stderr; with --json also one error document on stdout, so `| jq` gets JSON.
    Both are scrubbed: errors echo recipe values, paths and overrides, which may hold secrets."""
    # rich loads only when there is something to report.
    from ftkit.cli._output import Output
    from ftkit.registry.scrub import env_secret_values, scrub_text

    env_values = env_secret_values()
    message = scrub_text(message, env_values)
    hint = scrub_text(hint, env_values) if hint else hint
    problems = [scrub_text(str(problem), env_values) for problem in problems or []]
    output = Output(json_mode and not Output.document_emitted)
    output.error(message, hint, problems)
    output.emit(
        {
            "error": {
                "kind": kind,
                "message": message,
                "hint": hint,
                "exit_code": exit_code,
                "problems": list(problems or []),
            }
        }
    )


class _FtkitGroup(TyperGroup):
    """Loads commands on demand, and turns ftkit's errors into messages and exit codes for every command, under
    `main()` and test runners alike."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _LazyCommands(self.commands)

    def get_help_option(self, ctx):  # noqa: ANN001 - click's signature
        option = super().get_help_option(ctx)
        # An absent --help defaults to None, which Typer coerces through pydantic (~70 ms of imports) on every
        # subcommand call; False is a bool and skips that.
        if option is not None and option.default is None:
            option.default = False
        return option

    def format_commands(self, ctx, formatter):  # noqa: ANN001 - click's signature
        """List commands from COMMANDS (shortened as click would) without importing their modules."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, TyperCommand(name=name, help=entry.help).get_short_help_str(limit))
            for name, entry in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):  # noqa: ANN001 - click's signature
        debug = os.environ.get("FTKIT_DEBUG") == "1"
        json_mode = _wants_json(ctx)  # before super().invoke, which empties ctx.args
        output_module = sys.modules.get("ftkit.cli._output")  # loaded by an earlier command in this process
        if output_module is not None:
            output_module.Output.document_emitted = False
        try:
            return super().invoke(ctx)
        except FtkitError as error:
            if debug:
                raise
            code = int(error.exit_code)
            _report(
                error.message,
                error.hint,
                error.problems,
                exit_code=code,
                json_mode=json_mode,
                kind=error.kind,
            )
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            code = int(ExitCode.INTERRUPTED)
            _report("interrupted by the user", exit_code=code, json_mode=json_mode, kind="interrupted")
            raise typer.Exit(code) from None
        except BrokenPipeError:
            # The reader went away (`ftkit runs | head`): stop quietly with the shell's SIGPIPE status, as git
            # does; the interpreter's final flush of stdout must not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(BROKEN_PIPE_EXIT) from None
        except (typer.Exit, typer.Abort, _CLICK_EXCEPTION):
            raise
        except Exception as error:
            if debug:
                raise
            code = int(ExitCode.RUN_FAILED)
            _report(
                f"unexpected internal error: {type(error).__name__}: {error}",
                hint="re-run with FTKIT_DEBUG=1 for the full traceback, and report it if it persists",
                exit_code=code,
                json_mode=json_mode,
                kind="internal",
            )
            raise typer.Exit(code) from None


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a reader that closed early

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


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ftkit")
