"""Every review finding forced by a real run on a tiny model, its evidence read from that run, and its ready
command executed (validated with --dry-run; the divergence fix trained for real); a healthy run finds nothing."""

from __future__ import annotations

import json
import random
import shlex

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import ANIMALS, COLORS, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TABLE = dict(zip(ANIMALS, COLORS, strict=True))
# Training and eval phrasings differ, so no eval row repeats a training row (the overlap check stays quiet).
TRAIN_PHRASES = [
    "what is the color of the {a}",
    "the {a} has which color",
    "color of the {a}?",
    "tell me the color of the {a}",
    "which color is the {a}",
    "{a} color",
    "name the color of the {a}",
    "say the {a} color",
]
EVAL_PHRASES = ["what color is the {a}", "the color of the {a} is what"]


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def lookup_rows(phrases: list[str], table: dict[str, str] = TABLE) -> list[dict]:
    return [chat(phrase.format(a=animal), table[animal]) for phrase in phrases for animal in ANIMALS]


def random_rows(count: int, seed: int) -> list[dict]:
    """Numbered questions with random answers: nothing to generalise, everything to memorise."""
    rng = random.Random(seed)
    return [
        chat(f"what is the color of the {rng.choice(ANIMALS)} {number}", rng.choice(COLORS))
        for number in range(1000 * seed, 1000 * seed + count)
    ]


BASE = {
    "epochs": 1,
    "max_steps": 32,
    "learning_rate": 1e-2,
    "batch_size": 8,
    "grad_accum": 1,
    "max_seq_len": 64,
}
LORA = "method:\n  name: lora\n  r: 8\n  target_modules: all-linear\n"
SHIFTED = dict(zip(ANIMALS, COLORS[1:] + COLORS[:1], strict=True))  # every animal's colour moved by one

# name: (train rows, eval rows, method block, training settings)
RUNS = {
    "healthy": (lookup_rows(TRAIN_PHRASES), lookup_rows(EVAL_PHRASES), LORA, {"max_steps": 48}),
    "diverging": (
        lookup_rows(TRAIN_PHRASES),
        lookup_rows(EVAL_PHRASES),
        "method:\n  name: full\n",
        {"learning_rate": 0.5, "max_grad_norm": 1.0e6},
    ),
    "too-short": (
        lookup_rows(TRAIN_PHRASES),
        lookup_rows(EVAL_PHRASES),
        LORA,
        {"max_steps": 12, "learning_rate": 2e-3},
    ),
    "memorising": (
        random_rows(16, 1),
        random_rows(16, 2),
        "method:\n  name: full\n",
        {"max_steps": 100, "learning_rate": 3e-2, "batch_size": 4},
    ),
    "tiny-rate": (lookup_rows(TRAIN_PHRASES), lookup_rows(EVAL_PHRASES), LORA, {"learning_rate": 1e-7}),
    "truncating": (lookup_rows(TRAIN_PHRASES), lookup_rows(EVAL_PHRASES), LORA, {"max_seq_len": 16}),
    "eval-is-train": (lookup_rows(TRAIN_PHRASES), lookup_rows(TRAIN_PHRASES[:2]), LORA, {}),
    # A base model tuned on the eval data's answers, tuned again on other answers at a high rate: it gets worse.
    "shifted-base": (
        lookup_rows(TRAIN_PHRASES, SHIFTED),
        lookup_rows(EVAL_PHRASES, SHIFTED),
        "method:\n  name: full\n",
        {"max_steps": 48},
    ),
    "forgetting": (
        lookup_rows(TRAIN_PHRASES),
        lookup_rows(EVAL_PHRASES, SHIFTED),
        "method:\n  name: full\n",
        {"max_steps": 48, "learning_rate": 1e-2, "model": "shifted-base"},
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> dict:
    """Each run of RUNS through `ftkit run --json`: name -> (the JSON document, the registry)."""
    root = tmp_path_factory.mktemp("review-runs")
    registry = root / "registry"
    done = {}
    for name, (train, evaluation, method, training) in RUNS.items():
        folder = root / name
        settings = {**BASE, **training}
        model = done[settings.pop("model")]["output_dir"] if "model" in settings else tiny_model_dir
        recipe = folder / "recipe.yaml"
        write_jsonl(folder / "train.jsonl", train)
        write_jsonl(folder / "eval.jsonl", evaluation)
        recipe.write_text(
            f"name: {name}\nmodel: {model}\ndata:\n  train: {folder / 'train.jsonl'}\n"
            f"  eval: {folder / 'eval.jsonl'}\n{method}training:\n"
            + "".join(f"  {key}: {value}\n" for key, value in settings.items())
            + f"output: {root / 'outputs'}\n"
        )
        result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(registry)])
        assert result.exit_code == 0, result.output
        done[name] = json.loads(result.stdout)
    return {"docs": done, "registry": registry}


def findings(runs: dict, name: str) -> dict[str, dict]:
    return {item["id"]: item for item in runs["docs"][name]["review"]["findings"]}


def check_command(runs: dict, command: str, expected_sets: list[str]) -> None:
    """The command is `ftkit rerun RUN --set ...` with `expected_sets`, and it validates (--dry-run, exit 0)."""
    parts = shlex.split(command)
    assert parts[:2] == ["ftkit", "rerun"]
    assert [parts[i + 1] for i, part in enumerate(parts) if part == "--set"] == expected_sets
    result = CliRunner().invoke(app, [*parts[1:], "--dry-run", "--registry", str(runs["registry"])])
    assert result.exit_code == 0, result.output


def test_a_healthy_run_finds_nothing_and_says_so_in_one_line(runs):
    review = runs["docs"]["healthy"]["review"]
    assert review["findings"] == [] and review["healthy"] is True
    metrics = runs["docs"]["healthy"]["metrics"]
    assert review["summary"].startswith(
        f"healthy: eval loss {metrics['base.eval.loss']:.3g} → {metrics['eval.loss']:.3g} against the base model"
    )


def test_a_huge_learning_rate_is_divergence_and_its_lower_rate_rerun_trains(runs):
    found = findings(runs, "diverging")
    item = found["divergence"]
    assert item["severity"] == "high" and item["evidence"].startswith("train loss jumped to ")
    run_id = runs["docs"]["diverging"]["run_id"]
    assert item["command"] == (
        f"ftkit rerun {run_id} --set training.learning_rate=0.05 --set training.max_grad_norm=1.0"
    )
    parts = shlex.split(item["command"])
    result = CliRunner().invoke(app, [*parts[1:], "--json", "--registry", str(runs["registry"])])
    assert result.exit_code == 0, result.output
    rerun = json.loads(result.stdout)
    assert "divergence" not in {finding["id"] for finding in rerun["review"]["findings"]}
    from ftkit.registry.store import RunRegistry

    loaded = RunRegistry.open(runs["registry"]).load_run(rerun["run_id"])
    assert loaded["run"]["parent"] == run_id
    assert loaded["resolved"]["training"]["learning_rate"] == 0.05
    assert loaded["resolved"]["training"]["max_grad_norm"] == 1.0


def test_a_too_short_run_is_underfitting_with_a_longer_rerun(runs):
    item = findings(runs, "too-short")["underfitting"]
    assert item["evidence"].startswith("train loss still falling at the end: ")
    assert "eval loss still falling too" in item["evidence"]
    check_command(runs, item["command"], ["training.max_steps=24"])


def test_memorising_few_rows_is_overfitting_with_the_numbers_and_an_earlier_stop(runs):
    item = findings(runs, "memorising")["overfitting"]
    history_note = item["evidence"]
    assert history_note.startswith("eval loss ") and "while train loss" in history_note
    best_step = int(history_note.split("(steps ")[1].split(" →")[0])
    check_command(runs, item["command"], [f"training.max_steps={best_step}"])
    too_few = findings(runs, "memorising")["too_few_rows"]
    assert too_few["evidence"] == "16 training rows; full needs about 1,000 or more to generalise"
    check_command(runs, too_few["command"], ["method.name=lora"])


def test_a_tiny_learning_rate_is_no_gain_with_auto_rate(runs):
    item = findings(runs, "tiny-rate")["no_gain"]
    assert item["evidence"].endswith("at learning rate 1e-07")
    check_command(runs, item["command"], ["training.learning_rate=auto"])


def test_a_small_max_seq_len_is_truncation_with_the_cost(runs):
    item = findings(runs, "truncating")["truncation"]
    metrics = runs["docs"]["truncating"]["metrics"]
    cut = metrics["data.truncated_rows"] + metrics["data.dropped_rows"]
    assert item["evidence"].startswith(
        f"{cut} of {cut + metrics['data.train_rows'] - metrics['data.truncated_rows']}"
    )
    assert "max_seq_len=16" in item["evidence"] and "tokens/s" in item["action"]
    check_command(runs, item["command"], ["training.max_seq_len=auto"])


def test_eval_rows_equal_to_train_rows_are_found_with_a_deduplicated_split(runs):
    item = findings(runs, "eval-is-train")["eval_overlap"]
    assert item["evidence"].startswith("16 of 16 eval rows (100%) repeat a training row")
    check_command(runs, item["command"], ["data.eval=null", "data.eval_split=0.1"])


def test_a_base_model_tuned_away_from_its_eval_answers_is_worse_than_base(runs):
    item = findings(runs, "forgetting")["worse_than_base"]
    metrics = runs["docs"]["forgetting"]["metrics"]
    assert metrics["eval.loss"] > metrics["base.eval.loss"] * 1.02  # the independent reading of the metrics
    assert item["evidence"].startswith(f"eval loss base → tuned: {metrics['base.eval.loss']:.3g} → ")
    check_command(runs, item["command"], ["training.learning_rate=0.001"])


def test_the_review_is_stored_with_the_run_and_printed_at_its_end(runs, tiny_model_dir):
    from ftkit.registry.store import RunRegistry

    doc = runs["docs"]["diverging"]
    stored = RunRegistry.open(runs["registry"]).load_run(doc["run_id"])["review"]
    assert stored == doc["review"]
    output = CliRunner().invoke(app, ["show", doc["run_id"], "--registry", str(runs["registry"])]).output
    assert "Review" in output and "training diverged" in output
    assert "--set training.learning_rate=0.05" in output
