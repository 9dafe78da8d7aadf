"""With --json, an error still gives stdout one JSON document (the error), stderr the human message, same exit."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_registry_env(monkeypatch):
    monkeypatch.delenv("FTKIT_REGISTRY", raising=False)


def test_validate_unknown_key_gives_a_json_error_on_stdout(tmp_path):
    path = tmp_path / "BAD.yaml"
    path.write_text("model: ./model\nlerning_rate: 1\n")
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 2
    assert error["kind"] == "recipe"
    assert error["message"].startswith(str(path))
    assert any(problem.startswith(f"{path}:2: lerning_rate: unknown key") for problem in error["problems"])
    assert error["hint"]
    # people still read the message on stderr
    assert "error:" in result.stderr and "lerning_rate" in result.stderr


def test_show_without_a_registry_gives_a_json_error_on_stdout(tmp_path):
    registry = tmp_path / "R"
    result = runner.invoke(app, ["show", "nosuchrun", "--json", "--registry", str(registry)])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error == {
        "kind": "registry",
        "message": f"no registry at {registry}",
        "hint": error["hint"],
        "exit_code": 2,
        "problems": [],
    }
    assert f"no registry at {registry}" in " ".join(result.stderr.split())


def test_show_unknown_run_gives_a_json_error_on_stdout(tmp_path):
    registry = RunRegistry.open(tmp_path / "R")  # an empty registry: it exists, the run does not
    result = runner.invoke(app, ["show", "nosuchrun", "--json", "--registry", str(registry.root)])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 2
    assert "nosuchrun" in error["message"]
    assert "nosuchrun" in result.stderr


def test_without_json_stdout_stays_empty_on_error(tmp_path):
    path = tmp_path / "BAD.yaml"
    path.write_text("model: ./model\nlerning_rate: 1\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "lerning_rate" in result.stderr


def test_json_after_double_dash_is_not_the_option(tmp_path):
    result = runner.invoke(app, ["validate", "--", "--json"])  # a recipe file named `--json`
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "recipe file not found: --json" in " ".join(result.stderr.split())
