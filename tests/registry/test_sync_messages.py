"""Issue 11 §6: push and pull say what is wrong with the remote, whole. No remote configured: a located message
that says how to set one (exit 2). An unreachable remote: every line git printed, with URL passwords masked."""

from __future__ import annotations

import json

import pytest

REMOTE_PW = "SyncMsgPw8841"


@pytest.fixture(autouse=True)
def no_prompts(monkeypatch):
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")


@pytest.mark.parametrize("action", ["push", "pull"])
def test_no_remote_configured_says_how_to_set_one(registry, cli, action):
    result = cli("registry", action)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "no remote named 'origin'" in text
    assert "set one with `ftkit registry remote origin URL" in text
    assert "does not appear to be a git repository" not in text  # git's confusing half-message is gone


@pytest.mark.parametrize("action", ["push", "pull"])
def test_no_remote_named_json_error(registry, cli, action):
    result = cli("registry", action, "upstream", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "registry"
    assert error["message"].startswith("no remote named 'upstream'")
    assert "ftkit registry remote upstream URL" in error["message"]


@pytest.mark.parametrize("action", ["push", "pull"])
def test_a_missing_remote_folder_keeps_gits_whole_message(registry, cli, tmp_path, action):
    missing = tmp_path / "gone" / "shared.git"
    cli("registry", "remote", "origin", str(missing))
    result = cli("registry", action, "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    said = "\n".join(error["problems"])
    # git's full explanation, not only its first line
    assert "does not appear to be a git repository" in said
    assert "Could not read from remote repository." in said
    assert "Please make sure you have the correct access rights" in said
    assert "and the repository exists." in said
    assert "and the repository exists." in result.stderr


@pytest.mark.parametrize("action", ["push", "pull"])
def test_an_unreachable_url_keeps_gits_message_with_the_password_masked(registry, cli, action):
    url = f"https://erin:{REMOTE_PW}@127.0.0.1:9/registry.git"
    cli("registry", "remote", "origin", url)
    result = cli("registry", action, "--json")
    assert result.exit_code == 2
    assert REMOTE_PW not in result.output
    error = json.loads(result.stdout)["error"]
    said = "\n".join([error["message"], *error["problems"]])
    assert "cannot " in error["message"] and "'origin'" in error["message"]
    # git's line (one here, so it is the message itself and no extra problem lines)
    assert "unable to access 'https://127.0.0.1:9/registry.git/'" in said and "connect" in said, said
