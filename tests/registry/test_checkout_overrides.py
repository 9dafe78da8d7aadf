"""Overrides recorded with the run, shown by `show`, and written back by `checkout` (no training: runs via the API)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import chat_rows, write_jsonl

RECIPE = """\
# colours: keep this comment
model: tiny-llama
data:
  train: data/train.jsonl   # 64 rows

training:
  learning_rate: 1.0e-3   # tuned by hand
  epochs: 1
output: outputs/
"""


def add_overridden_run(add_run, project: Path, overrides: list[str]) -> str:
    """A run as `ftkit run project/recipe.yaml --set ...` records it."""
    return add_run(
        recipe_text=RECIPE,
        overrides=overrides,
        resolved={
            "model": "tiny-llama",
            "data": {"train": str(project / "data" / "train.jsonl"), "format": "chat"},
            "training": {"learning_rate": 5e-4, "epochs": 1},
            "output": str(project / "outputs"),
        },
    )


def test_checkout_writes_the_recipe_as_written_with_the_overrides(cli, add_run, registry, tmp_path):
    project = tmp_path / "project"
    run_id = add_overridden_run(add_run, project, ["training.learning_rate=5e-4", "evaluation.max_rows=4"])
    target = project / "back.yaml"
    result = cli("checkout", run_id, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text() == (
        "# colours: keep this comment\n"
        "model: tiny-llama\n"
        "data:\n"
        "  train: data/train.jsonl   # 64 rows\n"
        "\n"
        "training:\n"
        "  learning_rate: 5e-4   # tuned by hand\n"
        "  epochs: 1\n"
        "output: outputs/\n"
        "evaluation:\n"
        "  max_rows: 4\n"
    )
    assert "training.learning_rate=5e-4" in result.output
    resolved = cli("checkout", run_id, "-o", "-", "--resolved").stdout
    assert yaml.safe_load(resolved)["data"]["train"] == str(project / "data" / "train.jsonl")  # as today


def test_checkout_to_another_folder_rebases_paths_and_validates(cli, add_run, tmp_path, monkeypatch):
    project = tmp_path / "project"
    write_jsonl(project / "data" / "train.jsonl", chat_rows(8))
    run_id = add_overridden_run(add_run, project, [])
    target = tmp_path / "elsewhere" / "back.yaml"
    result = cli("checkout", run_id, "-o", str(target), "--json")
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert (
        "  train: ../project/data/train.jsonl   # 64 rows\n" in text
        and "output: ../project/outputs\n" in text
    )
    assert [note.split(":")[0] for note in json.loads(result.stdout)["rebased"]] == ["data.train", "output"]
    monkeypatch.chdir(tmp_path)  # validation resolves against the recipe's folder, not the working one
    validated = cli("validate", str(target))
    assert validated.exit_code == 0, validated.output


def test_show_lists_the_overrides_and_secrets_stay_out(cli, add_run, registry, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "wandbSecretValue123")
    typed = ["training.learning_rate=5e-4", "hub.api_key=plainvalue99", "note=key wandbSecretValue123"]
    run_id = add_overridden_run(add_run, Path("/abs/project"), typed)
    shown = json.loads(cli("show", run_id, "--json").stdout)
    assert shown["overrides"] == [
        "training.learning_rate=5e-4",
        "hub.api_key=***redacted***",
        "note=key ***redacted***",
    ]
    human = cli("show", run_id).stdout
    assert "--set training.learning_rate=5e-4" in human and "plainvalue99" not in human
    files = (registry.root / ".git").rglob("*")
    assert not [p for p in files if p.is_file() and b"plainvalue99" in p.read_bytes()]


def test_rerun_original_starts_from_the_recipe_with_its_overrides(cli, add_run, tmp_path, monkeypatch):
    import ftkit.cli.run as run_module

    project = tmp_path / "project"
    run_id = add_overridden_run(add_run, project, ["training.learning_rate=5e-4"])
    seen = {}

    def fake_run_and_record(recipe_path, overrides, **kwargs):
        seen.update(text=Path(recipe_path).read_text(), folder=Path(recipe_path).parent, overrides=overrides)
        return 0

    monkeypatch.setattr(run_module, "run_and_record", fake_run_and_record)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = cli("rerun", run_id, "--original", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.output
    assert seen["overrides"] == ["training.epochs=2"] and seen["folder"] == here
    assert "  learning_rate: 5e-4   # tuned by hand\n" in seen["text"]
    assert "  train: ../project/data/train.jsonl   # 64 rows\n" in seen["text"]
