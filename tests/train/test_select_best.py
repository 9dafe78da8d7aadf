"""`evaluation.select_best`: a run whose eval loss rises after a few steps keeps an earlier step, and the saved
output, reloaded from disk, reproduces that step's eval loss; a higher-is-better metric keeps its maximum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import write_jsonl, write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def contradicting_rows(colour: str, count: int) -> list[dict]:
    """The same question every time, answered with `colour`: train says one colour, eval another, so once the
    model has learnt the answer's format, learning the train colour raises the eval loss."""
    return [
        {
            "messages": [
                {"role": "user", "content": "what is the color of the cat"},
                {"role": "assistant", "content": colour},
            ]
        }
        for _ in range(count)
    ]


def run_rising(tmp_path: Path, model_dir: Path, method: str, rate: str) -> tuple[dict, Path, str]:
    train = write_jsonl(tmp_path / "data" / "train.jsonl", contradicting_rows("red", 64))
    evaluation = write_jsonl(tmp_path / "data" / "eval.jsonl", contradicting_rows("blue", 16))
    extra = "evaluation:\n  every_steps: 2\n  select_best: eval.loss\n  compare_base: false\n"
    recipe = write_recipe(tmp_path / "recipe.yaml", model_dir, train, evaluation, method=method, extra=extra)
    result = CliRunner().invoke(
        app,
        ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")]
        + ["--set", f"training.learning_rate={rate}"],
    )
    assert result.exit_code == 0, result.output
    from ftkit.registry.store import RunRegistry

    loaded = RunRegistry.open(tmp_path / "reg").load_run(json.loads(result.stdout)["run_id"])
    return loaded, Path(json.loads(result.stdout)["output_dir"]), result.stderr


def reloaded_eval_loss(output_dir: Path, eval_file: Path) -> float:
    """The eval loss of the saved output, reloaded with the public inference API, on the eval file's rows
    rendered afresh (the run's own encoded rows are not reused)."""
    import yaml

    from ftkit.data.render import render_example
    from ftkit.evaluation.metrics import causal_lm_loss
    from ftkit.inference import load_trained_model

    trained = load_trained_model(output_dir)
    max_seq_len = yaml.safe_load((output_dir / "resolved.yaml").read_text())["training"]["max_seq_len"]
    rows = []
    for line in eval_file.read_text().splitlines():
        rendered = render_example(json.loads(line), trained.tokenizer, max_seq_len)
        rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return causal_lm_loss(trained.model, rows, trained.tokenizer.pad_token_id)["loss"]


@pytest.mark.parametrize(
    ("method", "rate"),
    [("full", "0.05"), ("lora", "0.1")],  # measured: full falls to step 4 then rises; lora rises after step 2
)
def test_rising_eval_loss_keeps_an_earlier_step_and_the_output_reproduces_it(
    tmp_path, tiny_model_dir, method, rate
):
    loaded, output_dir, summary = run_rising(tmp_path, tiny_model_dir, method, rate)
    points = {row["step"]: row["eval_loss"] for row in loaded["history"] if "eval_loss" in row}
    assert sorted(points) == [2, 4, 6, 8, 10, 12]
    lowest = min(points, key=points.get)
    assert lowest < 12 and points[12] > points[lowest] + 0.05  # the precondition: eval loss did rise
    metrics = loaded["metrics"]
    assert metrics["train.best_step"] == lowest
    assert metrics["train.best_eval_loss"] == pytest.approx(points[lowest], abs=1e-12)
    # The saved weights are the best step's, not the last step's: reloaded from disk, scored on fresh rows.
    reloaded = reloaded_eval_loss(output_dir, tmp_path / "data" / "eval.jsonl")
    assert reloaded == pytest.approx(points[lowest], abs=1e-5)
    assert abs(reloaded - points[12]) > 0.05
    assert metrics["eval.loss"] == pytest.approx(points[lowest], abs=1e-5)  # the tuned evaluation too
    [event] = [e for e in loaded["events"] if e["kind"] == "best"]
    assert event["best_step"] == lowest and event["metric"] == "eval.loss"
    assert f"step {lowest} of 12" in event["message"] and "lower is better" in event["message"]
    assert f"best step (select_best)\t{lowest} (eval.loss " in summary


def test_higher_is_better_metric_keeps_the_maximum_and_restores_its_weights():
    import torch

    from ftkit.train.best_checkpoint import BestCheckpoint

    model = torch.nn.Linear(3, 2)
    frozen_before = model.bias.detach().clone()
    model.bias.requires_grad_(False)  # frozen: never copied, never changed
    best = BestCheckpoint("eval.exact_match")
    weights = {}
    for step, score in [(1, 0.25), (2, 0.75), (3, 0.5), (4, 0.75), (5, float("nan"))]:
        with torch.no_grad():
            model.weight.fill_(float(step))
        weights[step] = model.weight.detach().clone()
        best(step, {"exact_match": score, "loss": 1.0 / step}, model)
    assert best.step == 2  # the maximum; step 4 ties it and the earlier step wins; NaN never wins
    assert best.restore(model, final_step=5)
    assert torch.equal(model.weight, weights[2])
    assert torch.equal(model.bias, frozen_before)
    assert best.metrics() == {"train.best_step": 2, "train.best_eval_exact_match": 0.75}
    assert set(best.state) == {"weight"}

    lowest = BestCheckpoint("eval.loss")  # lower is better: the same scores pick the last finite step
    for step in (1, 2, 3):
        lowest(step, {"loss": 1.0 / step}, model)
    assert lowest.step == 3 and not lowest.restore(model, final_step=3)  # already the last step's weights


def test_a_metric_the_evaluation_does_not_measure_is_a_recipe_error():
    import torch

    from ftkit.errors import RecipeError
    from ftkit.train.best_checkpoint import BestCheckpoint

    best = BestCheckpoint("eval.accuracy")
    with pytest.raises(RecipeError, match=r"eval\.accuracy is not measured.*eval\.loss, eval\.perplexity"):
        best(2, {"loss": 1.0, "perplexity": 2.7, "tokens": 10}, torch.nn.Linear(1, 1))


def test_classification_run_selects_the_best_accuracy(tmp_path, tiny_encoder_dir):
    from tests.conftest import classification_rows

    train_rows = classification_rows(64, seed=1)
    eval_rows = classification_rows(32, seed=2)
    recipe = tmp_path / "cls.yaml"
    recipe.write_text(
        f"model: {tiny_encoder_dir}\ntask: classification\n"
        f"data:\n  train: {write_jsonl(tmp_path / 'train.jsonl', train_rows)}\n"
        f"  eval: {write_jsonl(tmp_path / 'eval.jsonl', eval_rows)}\n"
        "method:\n  name: full\n"
        "training:\n  epochs: 1\n  max_steps: 8\n  learning_rate: 5.0e-3\n  batch_size: 8\n  max_seq_len: 32\n"
        "evaluation:\n  every_steps: 2\n  select_best: eval.accuracy\n  compare_base: false\n"
        f"output: {tmp_path / 'out'}\n"
    )
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    assert result.exit_code == 0, result.output
    from ftkit.registry.store import RunRegistry

    loaded = RunRegistry.open(tmp_path / "reg").load_run(json.loads(result.stdout)["run_id"])
    points = [(row["step"], row["eval_accuracy"]) for row in loaded["history"] if "eval_accuracy" in row]
    assert [step for step, _ in points] == [2, 4, 6, 8]
    highest = max(value for _, value in points)
    first_at_max = next(step for step, value in points if value == highest)
    assert loaded["metrics"]["train.best_step"] == first_at_max
    assert loaded["metrics"]["train.best_eval_accuracy"] == highest
    assert loaded["metrics"]["eval.accuracy"] == pytest.approx(highest)  # the restored weights' evaluation
