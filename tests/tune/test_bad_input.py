"""`ftkit tune` refuses bad input before training: a located message, exit 2, and the registry left as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, classification_rows, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


CACHE = ".git/ftkit-cache/"  # the summaries cache, derived from the runs and rebuilt at will: not registry content


def snapshot(root: Path) -> dict[str, str]:
    """Every file under the registry folder (but the cache) and its sha256: any write shows up."""
    if not root.exists():
        return {}
    return {
        name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not (name := str(path.relative_to(root))).startswith(CACHE)
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory, tiny_model_dir) -> Path:
    """A registry holding one tune run, so "unchanged" is checked against real content."""
    root = tmp_path_factory.mktemp("tune-bad")
    train = write_jsonl(root / "train.jsonl", chat_rows(30, seed=5))
    result = runner.invoke(
        app,
        ["tune", str(train), "--model", str(tiny_model_dir), "--set", "training.max_steps=1"]
        + ["--registry", str(root / "registry")],
    )
    assert result.exit_code == 0, result.output
    return root / "registry"


def refused(registry: Path, *args: str | Path) -> str:
    """Run `ftkit tune ARGS --json`; assert exit 2, one error document, and an untouched registry. Returns
    the error message and hint."""
    before = snapshot(registry)
    result = runner.invoke(app, ["tune", *map(str, args), "--registry", str(registry), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 2
    assert "Traceback" not in result.output
    assert snapshot(registry) == before
    return " ".join([error["message"], error["hint"] or "", *error["problems"]])


def test_a_file_that_is_not_data(tmp_path, registry, tiny_model_dir):
    garbage = tmp_path / "photo.jsonl"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    message = refused(registry, garbage, "--model", tiny_model_dir)
    assert str(garbage) in message and f"{garbage}:1:" in message
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert "photo.png" in refused(registry, image, "--model", tiny_model_dir)


def test_a_bad_row_stops_tune_located(tmp_path, registry, tiny_model_dir):
    rows = chat_rows(30, seed=6)
    rows[2]["messages"][1]["content"] = "   "
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    message = refused(registry, train, "--model", tiny_model_dir)
    assert f"{train}:3: messages[1].content" in message


def test_a_model_path_that_does_not_exist(tmp_path, registry):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    message = refused(registry, train, "--model", tmp_path / "no-such-model")
    assert message.startswith(f"--model {tmp_path / 'no-such-model'}: no such folder")
    assert "--model" in refused(registry, train, "--model", tmp_path / "missing.gguf")


def test_a_time_budget_that_is_not_a_duration(tmp_path, registry, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    message = refused(registry, train, "--model", tiny_model_dir, "--time-budget", "soon")
    assert message.startswith("--time-budget 'soon'") and "20m" in message


def test_a_time_budget_too_small_for_one_step(tmp_path, tiny_model_dir):
    """Found only once the model is loaded and a step is timed: the run was already committed as `running` (runs
    are visible from the start), so it is finished as failed with the reason; exit 2 all the same."""
    registry = tmp_path / "registry"
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    result = runner.invoke(
        app,
        ["tune", str(train), "--model", str(tiny_model_dir), "--time-budget", "0.0001s",
         "--registry", str(registry), "--json"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    message = " ".join([error["message"], error["hint"] or ""])
    assert "--time-budget 0.0001s" in message and "too short for one training step" in message
    listed = runner.invoke(app, ["runs", "--all", "--json", "--registry", str(registry)])
    [run] = json.loads(listed.stdout)["runs"]
    assert run["status"] == "failed" and "too short for one training step" in (run.get("error") or "")


def test_classification_asked_of_chat_data(tmp_path, registry, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    message = refused(registry, train, "--model", tiny_model_dir, "--task", "classification")
    assert f"{train}: --task classification, but the file has no label column" in message
    assert "`messages`" in message  # the file's columns are named


def test_causal_lm_asked_of_classification_data(tmp_path, registry, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(40))
    message = refused(registry, train, "--model", tiny_model_dir, "--task", "causal-lm")
    assert f"{train}: --task causal-lm, but the file is classification data" in message
    assert "--task classification" in message


def test_unknown_task_and_method(tmp_path, registry, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    assert "--task" in refused(registry, train, "--model", tiny_model_dir, "--task", "regression")
    assert "nope" in refused(registry, train, "--model", tiny_model_dir, "--method", "nope")


def test_save_recipe_refuses_to_overwrite_without_force(tmp_path, registry, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    target = tmp_path / "mine.yaml"
    target.write_text("# my own recipe\n")
    message = refused(registry, train, "--model", tiny_model_dir, "--save-recipe", target)
    assert str(target) in message and "--force" in message
    assert target.read_text() == "# my own recipe\n"
    forced = runner.invoke(
        app,
        [
            "tune",
            str(train),
            "--model",
            str(tiny_model_dir),
            "--save-recipe",
            str(target),
            "--force",
            "--dry-run",
        ],
    )
    assert forced.exit_code == 0, forced.output
    assert "Generated by: ftkit tune" in target.read_text()
    assert runner.invoke(app, ["validate", str(target)]).exit_code == 0


def test_nothing_is_created_where_no_registry_was(tmp_path, tiny_model_dir):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(30))
    fresh = tmp_path / "fresh-registry"
    refused(fresh, train, "--model", tiny_model_dir, "--task", "classification")
    assert not fresh.exists()
