"""Eval loss during training: a few evenly spaced points in the run's history, measured as the final evaluation
measures it, and none when `evaluation.during_training` is 0."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.train.periodic_eval import evaluation_steps
from tests.conftest import write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("max_steps", "count", "expected"),
    [(12, 4, [3, 6, 9, 12]), (10, 4, [3, 5, 8, 10]), (2, 4, [1, 2]), (1, 4, [1]), (12, 0, []), (0, 4, [])],
)
def test_evaluation_steps_are_evenly_spaced_and_end_at_the_last_step(max_steps, count, expected):
    assert evaluation_steps(max_steps, count) == expected


def _run(tmp_path, tiny_model_dir, chat_data, extra: str = "") -> tuple[dict, list[dict]]:
    recipe = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"], extra=extra
    )
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    from ftkit.registry.store import RunRegistry

    loaded = RunRegistry.open(tmp_path / "reg").load_run(run_id)
    return loaded["metrics"], loaded["history"]


def test_eval_loss_is_measured_four_times_and_the_last_equals_the_final_evaluation(
    tmp_path, tiny_model_dir, chat_data
):
    metrics, history = _run(tmp_path, tiny_model_dir, chat_data)
    points = [row for row in history if "eval_loss" in row]
    assert [row["step"] for row in points] == [3, 6, 9, 12]  # max_steps 12 in the recipe
    assert metrics["train.evals_during_training"] == 4
    assert metrics["train.eval_rows_during_training"] == 16  # every eval row: fewer than 200
    # The final evaluation (after training, its own code path) on the same 16 rows is the independent reference.
    assert points[-1]["eval_loss"] == pytest.approx(metrics["eval.loss"], rel=1e-5)
    assert points[0]["eval_loss"] != pytest.approx(points[-1]["eval_loss"], rel=1e-3)  # measured, not copied
    train_losses = [row for row in history if "loss" in row]
    assert len(train_losses) == 12  # the train-loss rows are all still there


def test_during_training_zero_measures_nothing(tmp_path, tiny_model_dir, chat_data):
    metrics, history = _run(tmp_path, tiny_model_dir, chat_data, extra="evaluation:\n  during_training: 0\n")
    assert not [row for row in history if "eval_loss" in row]
    assert metrics["train.evals_during_training"] == 0
