"""`evaluation.every_steps`: the recipe's metrics land in the run's history at the right steps (every N and the
last, or each epoch's end), fixed prompts are answered by the base model, at each evaluation and by the tuned
model, everything is stored in samples.jsonl, and contradictory evaluation keys are located recipe errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.train.periodic_eval import every_n_steps
from tests.conftest import CHATML, write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS_YAML = (
    "  prompts:\n"
    "    - what is the color of the cat\n"
    "    - [{role: system, content: answer with one word}, {role: user, content: what is the color of the owl}]\n"
)


@pytest.mark.parametrize(
    ("max_steps", "every", "expected"),
    [(12, 5, [5, 10, 12]), (12, 4, [4, 8, 12]), (3, 5, [3]), (1, 1, [1]), (0, 5, [])],
)
def test_every_n_steps_includes_the_last_step(max_steps, every, expected):
    assert every_n_steps(max_steps, every) == expected


def run_recipe(tmp_path: Path, tiny_model_dir: Path, chat_data: dict, extra: str, *args: str):
    recipe = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"], extra=extra
    )
    result = CliRunner().invoke(
        app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg"), *args]
    )
    assert result.exit_code == 0, result.output
    from ftkit.registry.store import RunRegistry

    loaded = RunRegistry.open(tmp_path / "reg").load_run(json.loads(result.stdout)["run_id"])
    return result, loaded


@pytest.fixture
def every_four(tmp_path, tiny_model_dir, chat_data):
    extra = (
        "evaluation:\n  every_steps: 4\n  generate: 3\n  max_new_tokens: 4\n"
        "  metrics: [exact_match, contains]\n" + PROMPTS_YAML
    )
    return run_recipe(tmp_path, tiny_model_dir, chat_data, extra)


def test_metric_curves_land_in_history_at_every_fourth_step(every_four):
    _, loaded = every_four
    points = [row for row in loaded["history"] if "eval_loss" in row]
    assert [row["step"] for row in points] == [4, 8, 12]  # not during_training's 3, 6, 9, 12
    for row in points:
        assert set(row) >= {"eval_loss", "eval_perplexity", "eval_exact_match", "eval_contains"}
    metrics = loaded["metrics"]
    assert metrics["train.evals_during_training"] == 3
    # The final evaluation (after training, its own call) on the same rows is the independent reference.
    assert points[-1]["eval_loss"] == pytest.approx(metrics["eval.loss"], abs=1e-6)
    assert points[-1]["eval_exact_match"] == metrics["eval.exact_match"]
    assert points[-1]["eval_contains"] == metrics["eval.contains"]
    assert points[0]["eval_loss"] != pytest.approx(points[-1]["eval_loss"], abs=1e-3)  # measured each time
    from ftkit.review.facts import Facts

    assert [step for step, _ in Facts.of(loaded).evals] == [4, 8, 12]  # `ftkit review` reads the same curve


def test_fixed_prompts_are_answered_by_base_each_evaluation_and_tuned(every_four, tiny_model_dir):
    result, loaded = every_four
    prompts = [row for row in loaded["samples"] if row["kind"] == "prompt"]
    assert [row["prompt"] for row in prompts] == [
        "what is the color of the cat",
        [
            {"role": "system", "content": "answer with one word"},
            {"role": "user", "content": "what is the color of the owl"},
        ],
    ]
    for row in prompts:
        assert set(row["steps"]) == {"4", "8", "12"}
        assert row["steps"]["12"] == row["tuned"]  # the last evaluation saw the final weights
    # Independent references: the saved output reloaded and asked one prompt at a time through the public API,
    # and the base model loaded from its folder.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftkit.evaluation.generate import greedy_generate
    from ftkit.inference import generate, load_trained_model

    trained = load_trained_model(json.loads(result.stdout)["output_dir"])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = CHATML
    for row in prompts:
        assert generate(trained, row["prompt"], max_new_tokens=4) == row["tuned"]
        messages = (
            [{"role": "user", "content": row["prompt"]}] if isinstance(row["prompt"], str) else row["prompt"]
        )
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert greedy_generate(base, tokenizer, text, max_new_tokens=4) == row["base"]
    assert "Fixed prompts" in result.stderr and "what is the color of the cat" in result.stderr
    assert json.loads(result.stdout)["prompts"] == prompts


def test_eval_samples_are_stored_with_both_answers_and_per_row_scores(every_four):
    _, loaded = every_four
    rows = [row for row in loaded["samples"] if row["kind"] == "eval"]
    assert len(rows) == 3  # evaluation.generate
    for row in rows:
        assert set(row) >= {"prompt", "reference", "base", "tuned", "scores"}
        assert row["reference"] in {"red", "green", "blue", "yellow", "purple", "orange", "black", "white"}
        for side in ("base", "tuned"):
            assert row["scores"][side]["exact_match"] == float(row["scores"][side]["match"])
            assert isinstance(row[side], str)
    for side, prefix in (("base", "base.eval"), ("tuned", "eval")):  # the rows add up to the run's metrics
        for metric in ("exact_match", "contains"):
            share = sum(row["scores"][side][metric] for row in rows) / len(rows)
            assert share == loaded["metrics"][f"{prefix}.{metric}"]


def test_every_epoch_evaluates_at_each_epoch_end(tmp_path, tiny_model_dir, chat_data):
    # 64 train rows in batches of 8: epoch 1 ends at step 8; max_steps 12 ends epoch 2 early, at step 12.
    _, loaded = run_recipe(
        tmp_path, tiny_model_dir, chat_data, "evaluation:\n  every_steps: epoch\n  compare_base: false\n"
    )
    assert [row["step"] for row in loaded["history"] if "eval_loss" in row] == [8, 12]


def write_bad(tmp_path: Path, tiny_model_dir: Path, chat_data: dict, evaluation: str, task: str = "") -> Path:
    recipe = write_recipe(
        tmp_path / "recipe.yaml", tiny_model_dir, chat_data["train"], chat_data["eval"], extra=evaluation
    )
    if task:
        recipe.write_text(recipe.read_text().replace("task: causal-lm", f"task: {task}"))
    return recipe


@pytest.mark.parametrize(
    ("evaluation", "task", "key", "line", "message"),
    [
        (
            "evaluation:\n  during_training: 4\n  every_steps: 10\n",
            "",
            "evaluation.every_steps",
            3,
            "give either `every_steps` or `during_training`, not both",
        ),
        (
            "evaluation:\n  during_training: 0\n  select_best: eval.loss\n",
            "",
            "evaluation.select_best",
            3,
            "there is no evaluation during training to choose from",
        ),
        (
            "evaluation:\n  select_best: eval.exact_match\n",
            "",
            "evaluation.select_best",
            2,
            "during_training measures only eval.loss, eval.perplexity; set evaluation.every_steps",
        ),
        (
            "evaluation:\n  every_steps: 5\n  select_best: eval.exact_match\n",
            "",
            "evaluation.select_best",
            3,
            "is scored on generated answers, and evaluation.generate is 0",
        ),
        (
            "evaluation:\n  every_steps: 5\n  select_best: loss\n",
            "",
            "evaluation.select_best",
            3,
            "'loss' is not an eval metric",
        ),
        (
            "evaluation:\n  every_steps: 5\n  generate: 4\n  select_best: eval.wobble\n",
            "",
            "evaluation.select_best",
            4,
            "cannot tell whether a higher or a lower eval.wobble is better",
        ),
        (
            "evaluation:\n  prompts: [hello]\n",
            "classification",
            "evaluation.prompts",
            2,
            "fixed prompts are answered by generation",
        ),
    ],
)
def test_contradictory_evaluation_keys_are_located_errors(
    tmp_path, tiny_model_dir, chat_data, evaluation, task, key, line, message
):
    from ftkit.errors import RecipeError
    from ftkit.recipe.load import load_recipe

    recipe = write_bad(tmp_path, tiny_model_dir, chat_data, evaluation, task)
    first = len(recipe.read_text().split("evaluation:\n")[0].splitlines())  # lines before `evaluation:`
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe)
    [problem] = [p for p in caught.value.problems if key in p]
    assert problem.startswith(f"{recipe}:{first + line}: {key}: ")
    assert message in problem


def test_validate_exits_2_for_select_best_without_evaluation(tmp_path, tiny_model_dir, chat_data):
    recipe = write_bad(
        tmp_path, tiny_model_dir, chat_data, "evaluation:\n  during_training: 0\n  select_best: eval.loss\n"
    )
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2
    assert "evaluation.select_best" in result.output and "Traceback" not in result.output


def test_set_overrides_are_located_at_the_flag(tmp_path, tiny_model_dir, chat_data):
    from ftkit.errors import RecipeError
    from ftkit.recipe.load import load_recipe

    recipe = write_bad(tmp_path, tiny_model_dir, chat_data, "")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, ["evaluation.during_training=0", "evaluation.select_best=eval.loss"])
    assert any(p.startswith("--set evaluation.select_best: ") for p in caught.value.problems)
