"""Fast commands stay fast: `ftkit --help` imports no command module, `ftkit CMD --help` only CMD's, and neither
`--help` nor `ftkit validate` imports torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from ftkit import __version__
from ftkit.cli.app import COMMANDS, app

PROBE = """
import sys
from ftkit.cli.app import app
try:
    app(args={args!r}, prog_name="ftkit")
except SystemExit as exit_:
    code = exit_.code
print("MODULES=" + ",".join(sorted(sys.modules)))
"""

HEAVY = ("torch", "transformers", "peft", "trl", "datasets")


def imported_modules(args: list[str]) -> set[str]:
    """Every module a fresh interpreter has loaded after running `ftkit ARGS`."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
    line = [line for line in result.stdout.splitlines() if line.startswith("MODULES=")]
    assert line, result.stdout + result.stderr
    return set(line[-1].removeprefix("MODULES=").split(","))


def imported_heavy_modules(args: list[str]) -> str:
    modules = imported_modules(args)
    return ",".join(m for m in HEAVY if m in modules)


def registered_commands(module_name: str) -> dict[str, typer.core.TyperCommand]:
    """The commands a command module's register(app) adds, built by Typer itself."""
    holder = typer.Typer()
    importlib.import_module(module_name).register(holder)
    return dict(typer.main.get_group(holder).commands)


def test_help_does_not_import_torch():
    assert imported_heavy_modules(["--help"]) == ""


def test_validate_does_not_import_torch(recipe_file):
    assert imported_heavy_modules(["validate", str(recipe_file)]) == ""


def test_version_and_help():
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"ftkit {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.stdout and "validate" in result.stdout


def test_unknown_command_is_exit_2():
    assert CliRunner().invoke(app, ["frobnicate"]).exit_code == 2


def test_command_table_matches_the_modules():
    """The static table `ftkit --help` prints from names every command the modules register, with their own help."""
    found = {}
    for module_name in dict.fromkeys(entry.module for entry in COMMANDS.values()):
        for name, command in registered_commands(module_name).items():
            found[name] = (module_name, command.get_short_help_str(limit=10_000))
    assert found == {name: (entry.module, entry.help) for name, entry in COMMANDS.items()}


def test_help_imports_no_command_module():
    modules = imported_modules(["--help"])
    command_modules = {entry.module for entry in COMMANDS.values()}
    assert not modules & command_modules
    assert "pydantic" not in modules and "rich" not in modules


@pytest.mark.parametrize("name", ["run", "runs", "data", "methods", "registry"])
def test_command_help_imports_only_its_module(name):
    modules = imported_modules([name, "--help"])
    others = {entry.module for entry in COMMANDS.values()} - {COMMANDS[name].module}
    assert COMMANDS[name].module in modules
    assert not modules & others
    assert "pydantic" not in modules  # typer would load it to coerce an absent --help; recipes are not parsed
    assert not [m for m in HEAVY if m in modules]


def test_help_lists_every_command_once():
    lines = CliRunner().invoke(app, ["--help"], terminal_width=200).stdout.splitlines()
    listed = [line.split()[0] for line in lines[lines.index("Commands:") + 1 :] if line.strip()]
    assert listed == list(COMMANDS)


def test_subgroups_and_misspelled_commands():
    runner = CliRunner()
    assert "check" in runner.invoke(app, ["data", "--help"]).stdout
    assert "lora" in runner.invoke(app, ["methods", "--json"]).stdout
    result = runner.invoke(app, ["runz"])
    assert result.exit_code == 2 and "'runs'" in result.output.partition("Did you mean")[2]
