"""Issue 11 §1: errors and warnings go through the registry's scrubber before they are printed, in human form and
in --json error documents. Distinct secrets are planted in a recipe field, a data URL's password, a --set value,
an environment variable's value and a run name; each command fails on the planted value, and its whole output
(stdout and stderr) is searched for every secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import write_jsonl, write_recipe

MODEL_TOKEN = "hf_ModelFieldTok9k2j4h6g8f"
DATA_PW = "DataUrlPassw0rd5512"
OVERRIDE_TOKEN = "hf_OverrideValTok3m5n7b9v1c"
ENV_VALUE = "EnvSecretValueQ7W3E9"
NAME_TOKEN = "sk-NameTokenAbcdefghij12345"
SECRETS = [MODEL_TOKEN, DATA_PW, OVERRIDE_TOKEN, ENV_VALUE, NAME_TOKEN]

runner = CliRunner()


@pytest.fixture
def planted(tmp_path, monkeypatch, tiny_model_dir, chat_data) -> dict[str, list[str]]:
    """Command lines that each fail on a planted secret, by what the secret is planted in."""
    monkeypatch.setenv("WANDB_API_KEY", ENV_VALUE)
    monkeypatch.setenv("FTKIT_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("COLUMNS", "200")
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"])
    model_field = write_recipe(tmp_path / "model.yaml", f"./{MODEL_TOKEN}", chat_data["train"])
    data_url = write_recipe(
        tmp_path / "url.yaml", tiny_model_dir, Path(f"https://alice:{DATA_PW}@data.example/train.jsonl")
    )
    broken = write_jsonl(tmp_path / "broken" / "train.jsonl", [{"text": "fine"}] * 30)
    broken.write_text(broken.read_text() + "{not json\n")
    return {
        "recipe field": ["run", str(model_field)],
        "data URL password": ["run", str(data_url)],
        "--set value": ["run", str(recipe), "--set", f"training.learning_rate={OVERRIDE_TOKEN}"],
        "environment value": ["run", str(recipe), "--set", f"data.train=/nowhere/{ENV_VALUE}/train.jsonl"],
        "environment value in validate": ["validate", str(recipe), "--set", f"method.name={ENV_VALUE}"],
        # the header line names the run, then the data error stops it
        "run name": ["run", str(recipe), "--set", f"name={NAME_TOKEN}", "--set", f"data.train={broken}"],
    }


CASES = [
    "recipe field",
    "data URL password",
    "--set value",
    "environment value",
    "environment value in validate",
    "run name",
]


@pytest.mark.parametrize("json_mode", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("case", CASES)
def test_errors_never_echo_a_planted_secret(planted, case, json_mode):
    args = planted[case] + (["--json"] if json_mode else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    everything = result.stdout + result.stderr
    assert [secret for secret in SECRETS if secret in everything] == [], everything
    assert "***" in everything  # the value is replaced where it was, the rest of the message stays
    if json_mode and case != "run name":  # the name is in the header line (stderr), not in the error
        error = json.loads(result.stdout)["error"]
        assert "***" in json.dumps(error)


def test_a_scrubbed_error_still_locates_the_problem(planted):
    result = runner.invoke(app, planted["data URL password"])
    text = " ".join(result.stderr.split())
    assert "url.yaml:" in text and "data.train" in text
    assert "alice:***@data.example/train.jsonl" in text


def test_an_unexpected_error_is_scrubbed_too(monkeypatch, tmp_path):
    """The last-resort handler prints the exception text: scrubbed like the rest."""
    monkeypatch.setenv("WANDB_API_KEY", ENV_VALUE)

    def explode(*args, **kwargs):
        raise RuntimeError(f"boom near https://bob:{DATA_PW}@host.example/x with {ENV_VALUE}")

    monkeypatch.setattr("ftkit.recipe.load.load_recipe", explode)
    result = runner.invoke(app, ["validate", str(tmp_path / "any.yaml"), "--json"])
    assert result.exit_code == 1
    everything = result.stdout + result.stderr
    assert DATA_PW not in everything and ENV_VALUE not in everything
    assert "unexpected internal error: RuntimeError: boom near https://bob:***@host.example/x" in everything


def test_a_json_document_masks_secrets_too(planted):
    """Not only errors: a successful command's JSON document leaves the process scrubbed as well."""
    recipe = planted["--set value"][1]
    result = runner.invoke(app, ["validate", recipe, "--set", f"name={NAME_TOKEN}-{ENV_VALUE}", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert NAME_TOKEN not in result.stdout and ENV_VALUE not in result.stdout
    assert "***" in json.dumps(document)
