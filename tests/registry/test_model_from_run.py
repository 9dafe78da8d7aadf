"""`model: run:<ref>` (or a run's output folder): training starts from an earlier run's trained weights, and the
registry records that run as the parent. Tiny model, a few steps, for real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry
from tests.conftest import write_recipe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

CHEAP = ["--set", "evaluation.max_rows=8", "--set", "evaluation.generate=false"]


def _run(args: list[str]) -> tuple[int, dict | str]:
    result = CliRunner().invoke(app, [*args, "--json"])
    if result.exit_code != 0:
        return result.exit_code, result.output
    return 0, json.loads(result.stdout)


def _first(tmp_path: Path, recipe_file: Path, registry: Path, extra: list[str] = ()) -> dict:
    code, payload = _run(["run", str(recipe_file), "--registry", str(registry), *CHEAP, *extra])
    assert code == 0, payload
    assert (
        CliRunner().invoke(app, ["tag", payload["run_id"], "sft", "--registry", str(registry)]).exit_code == 0
    )
    return payload


def _second(recipe_file: Path, model: str, tmp_path: Path, name: str = "dpo-like.yaml", **kw) -> Path:
    text = recipe_file.read_text().replace(f"model: {_model_of(recipe_file)}", f"model: {model}")
    path = tmp_path / name
    path.write_text(text)
    return path


def _model_of(recipe_file: Path) -> str:
    return yaml.safe_load(recipe_file.read_text())["model"]


def test_second_run_starts_from_the_first_runs_trained_lora_weights(tmp_path, recipe_file):
    registry = tmp_path / "registry"
    first = _first(tmp_path, recipe_file, registry)
    tuned = first["metrics"]["eval.loss"]
    assert (
        abs(first["metrics"]["base.eval.loss"] - tuned) > 1e-2
    )  # training moved the loss: the check can fail

    second_recipe = _second(recipe_file, "run:sft", tmp_path)
    code, second = _run(["run", str(second_recipe), "--registry", str(registry), *CHEAP,
                         "--set", "training.max_steps=2", "--set", "method.r=4"])  # fmt: skip
    assert code == 0, second
    # The second run's base is the first run's tuned model: the same eval file gives the first run's eval loss.
    assert second["metrics"]["base.eval.loss"] == pytest.approx(tuned, abs=1e-5)

    reg = RunRegistry.open(registry, create=False)
    record = reg.load_run(second["run_id"])
    assert record["run"]["parent"] == first["run_id"]
    assert record["run"]["model"] == f"run:{first['run_id']}"
    assert record["resolved"]["model"] == f"run:{first['run_id']}"  # the full id, not the tag
    facts = record["run"]["model_run"]
    assert facts["run"] == first["run_id"] and facts["method"] == "lora" and facts["merged"] is True
    assert facts["base_model"] == str(_model_of(recipe_file))
    assert reg.load_run(first["run_id"])["children"] == [second["run_id"]]
    show = CliRunner().invoke(app, ["show", second["run_id"], "--registry", str(registry), "--json"])
    assert json.loads(show.stdout)["lineage"]["parent"]["id"] == first["run_id"]
    shown = CliRunner().invoke(app, ["show", second["run_id"], "--registry", str(registry)])
    assert first["run_id"] in shown.output and "merged" in shown.output
    log = CliRunner().invoke(
        app, ["log", "--registry", str(registry)], env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"}
    )
    assert "trained from" in log.output and "rerun of" not in log.output, log.output

    # The output-folder form is the same run: same weights, same parent.
    folder_recipe = _second(recipe_file, first["output_dir"], tmp_path, name="from-folder.yaml")
    code, third = _run(["run", str(folder_recipe), "--registry", str(registry), *CHEAP,
                        "--set", "training.max_steps=1"])  # fmt: skip
    assert code == 0, third
    assert third["metrics"]["base.eval.loss"] == pytest.approx(tuned, abs=1e-5)
    assert (
        RunRegistry.open(registry, create=False).load_run(third["run_id"])["run"]["parent"] == first["run_id"]
    )


def test_a_full_run_is_loaded_from_its_output_folder_even_when_it_is_gone(
    tmp_path, recipe_file, tiny_model_dir
):
    registry = tmp_path / "registry"
    full = recipe_file.parent / "data"
    recipe_file = write_recipe(
        tmp_path / "full.yaml", tiny_model_dir, full / "train.jsonl", full / "eval.jsonl", "full"
    )
    first = _first(tmp_path, recipe_file, registry, ["--set", "training.max_steps=4",
                                                     "--set", "training.learning_rate=1e-3"])  # fmt: skip
    tuned = first["metrics"]["eval.loss"]
    shutil.rmtree(first["output_dir"])  # rebuilt from the registry's objects store
    second_recipe = _second(recipe_file, "run:@latest", tmp_path)
    code, second = _run(["run", str(second_recipe), "--registry", str(registry), *CHEAP,
                         "--set", "training.max_steps=1"])  # fmt: skip
    assert code == 0, second
    assert second["metrics"]["base.eval.loss"] == pytest.approx(tuned, abs=1e-5)
    record = RunRegistry.open(registry, create=False).load_run(second["run_id"])
    assert record["run"]["parent"] == first["run_id"] and record["run"]["model_run"]["merged"] is False


def _line_of_model(path: Path) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("model:"))


def test_bad_model_runs_exit_2_located_at_the_model_line(tmp_path, recipe_file, tiny_model_dir):
    registry = tmp_path / "registry"
    first = _first(tmp_path, recipe_file, registry, ["--set", "training.max_steps=1"])

    def refused(
        model: str, expected: str, registry_arg: Path = registry, extra: list[str] = (), validate=True
    ):
        path = _second(recipe_file, model, tmp_path, name="bad.yaml")
        commands = [["run", str(path), "--registry", str(registry_arg), *extra]]
        if validate:
            commands.append(["validate", str(path), "--registry", str(registry_arg), *extra])
        for command in commands:
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 2, (command, result.output)
            assert f"{path}:{_line_of_model(path)}: model: " in result.output, result.output
            assert expected in " ".join(result.output.split()), result.output

    refused("run:no-such-run", "no-such-run")
    missing = tmp_path / "missing-registry"
    refused("run:sft", "there is no run registry", registry_arg=missing, validate=False)
    assert not missing.exists()  # `ftkit run` did not create one to look the run up in
    path = _second(recipe_file, "run:sft", tmp_path, name="unchecked.yaml")
    unchecked = CliRunner().invoke(app, ["validate", str(path), "--registry", str(missing)])
    assert unchecked.exit_code == 0, unchecked.output  # validate says what it could not check
    assert "not checked" in " ".join(unchecked.output.split()) and str(missing) in unchecked.output.replace(
        "\n", ""
    )
    refused("run:sft", "this recipe's task is classification", extra=["--set", "task=classification"])
    # A run recorded as failed (its record as `ftkit run` commits one whose training raised).
    reg = RunRegistry.open(registry, create=False)
    from ftkit.registry.records import RunRecord

    reg.commit_run(RunRecord(run_id=reg.new_run_id(), status="failed", name="broke", method="lora",
                             model=str(tiny_model_dir), task="causal-lm", error="boom"))  # fmt: skip
    refused("run:broke", "is failed: only a succeeded run")
    # Its weights lost: the output folder deleted and the registry's objects store emptied.
    shutil.rmtree(first["output_dir"])
    shutil.rmtree(registry / "objects")
    refused(f"run:{first['run_id'][:17]}", "the registry's objects store lacks")
