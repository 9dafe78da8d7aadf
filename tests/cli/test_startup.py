"""Fast commands stay fast: `ftkit --help` and `ftkit validate` never import torch."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from ftkit import __version__
from ftkit.cli.app import app

PROBE = """
import sys
from ftkit.cli.app import app
try:
    app(args={args!r}, prog_name="ftkit")
except SystemExit as exit_:
    code = exit_.code
heavy = sorted(m for m in ("torch", "transformers", "peft", "trl", "datasets") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def imported_heavy_modules(args: list[str]) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
    line = [line for line in result.stdout.splitlines() if line.startswith("HEAVY=")]
    assert line, result.stdout + result.stderr
    return line[-1].removeprefix("HEAVY=")


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
