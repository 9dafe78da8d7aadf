"""`task: preference` on the tiny model: DPO over LoRA and full fine-tuning raises preference accuracy on held-out
pairs; the recorded scores agree with TRL's own evaluation (its implicit reward margin equals β × the change of
ftkit's log-prob margin, since the reference is the base); the saved output reloads to the same scores; the
reference-free objective trains; bad input is exit 2, located."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "cow", "duck", "goat"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black"]


def pairs(count: int, seed: int, chat: bool = False) -> list[dict]:
    """The chosen answer repeats the colour the prompt states; the rejected one names another colour."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        animal, colour = rng.choice(ANIMALS), rng.choice(COLOURS)
        wrong = rng.choice([c for c in COLOURS if c != colour])
        prompt = f"the {animal} is {colour}. what colour is the {animal}?"
        chosen, rejected = f" it is {colour}", f" it is {wrong}"
        if chat:
            rows.append({"prompt": [{"role": "user", "content": prompt}],
                         "chosen": [{"role": "assistant", "content": chosen.strip()}],
                         "rejected": [{"role": "assistant", "content": rejected.strip()}]})  # fmt: skip
        else:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def recipe(tmp_path: Path, model: Path, method: str = "lora", extra: str = "", chat: bool = False) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    train = write_jsonl(tmp_path / "train.jsonl", pairs(48, seed=1, chat=chat))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", pairs(16, seed=2, chat=chat))
    options = "  r: 8\n  alpha: 16\n  target_modules: all-linear\n" if method == "lora" else ""
    path = tmp_path / "pref.yaml"
    path.write_text(
        f"model: {model}\ntask: preference\ndata:\n  train: {train}\n  eval: {evaluation}\n"
        f"method:\n  name: {method}\n{options}"
        "training:\n  max_steps: 12\n  learning_rate: 1.0e-2\n  batch_size: 8\n  max_seq_len: 64\n  seed: 7\n"
        f"output: {tmp_path / 'out'}\n{extra}"
    )
    return path


def run(path: Path, *args: str):
    return CliRunner().invoke(
        app, ["run", str(path), "--json", "--registry", str(path.parent / "reg"), *args]
    )


@pytest.mark.parametrize("method", ["lora", "full"])
def test_dpo_raises_preference_accuracy_and_agrees_with_trl(tmp_path, tiny_model_dir, method):
    result = run(recipe(tmp_path, tiny_model_dir, method, extra="preference: {beta: 0.1}\n"))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["eval.preference_accuracy"] > metrics["base.eval.preference_accuracy"]
    assert metrics["eval.logp_margin"] > metrics["base.eval.logp_margin"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"]
    assert metrics["base.eval.loss"] == pytest.approx(
        0.693147, abs=1e-4
    )  # sigmoid DPO with policy = reference
    assert metrics["base.eval.reward_margin"] == pytest.approx(0.0, abs=1e-6)
    # TRL's implicit reward margin vs the reference (= the base) is β × (tuned − base) of ftkit's log-prob margin
    expected = 0.1 * (metrics["eval.logp_margin"] - metrics["base.eval.logp_margin"])
    assert metrics["eval.reward_margin"] == pytest.approx(expected, rel=1e-3, abs=1e-4)
    assert metrics["train.loss_last"] < metrics["train.loss_first"]
    assert metrics["data.train_pairs"] == 48 and metrics["data.eval_pairs"] == 16


def test_saved_adapter_reloads_to_the_recorded_scores(tmp_path, tiny_model_dir):
    result = run(recipe(tmp_path, tiny_model_dir))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    from ftkit.evaluation.preference_scores import pair_logps, preference_scores
    from ftkit.inference import load_trained_model

    assert not (Path(payload["output_dir"]) / "ref").exists()  # the reference is the base, not a saved copy
    trained = load_trained_model(payload["output_dir"])
    tokenizer = trained.tokenizer
    rows = []
    for pair in pairs(16, seed=2):  # DPO's split for plain strings: prompt, then answer + EOS
        prompt = tokenizer(pair["prompt"])["input_ids"]
        rows.append({side + "_ids": tokenizer(pair["prompt"] + pair[side] + tokenizer.eos_token)["input_ids"][len(prompt):]
                     for side in ("chosen", "rejected")} | {"prompt_ids": prompt})  # fmt: skip
    chosen, rejected = pair_logps(trained.model, rows, tokenizer.pad_token_id, 64, 8, "cpu")
    reloaded = preference_scores(chosen, rejected)
    assert reloaded["preference_accuracy"] == pytest.approx(
        payload["metrics"]["eval.preference_accuracy"], abs=1e-5
    )
    assert reloaded["logp_margin"] == pytest.approx(payload["metrics"]["eval.logp_margin"], abs=1e-4)


def test_chat_pairs_and_the_reference_free_objective_train(tmp_path, tiny_model_dir):
    path = recipe(tmp_path, tiny_model_dir, chat=True, extra="preference: {objective: simpo, beta: 2.0}\n")
    result = run(path, "--set", "training.learning_rate=5.0e-3")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["eval.logp_margin"] > metrics["base.eval.logp_margin"]
    assert metrics["eval.loss"] < metrics["base.eval.loss"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "preference: {loss_type: nonsense}\n",
            "preference.loss_type: `nonsense` is not a DPO loss of the installed TRL",
        ),
        (
            "preference: {objective: orpo, reference: precompute}\n",
            "preference.reference: orpo uses no reference model",
        ),
        (
            "evaluation: {every_steps: 4}\n",
            "evaluation.every_steps: a preference run is evaluated on its eval pairs",
        ),
    ],
)
def test_bad_preference_settings_exit_2_located(tmp_path, tiny_model_dir, extra, expected):
    path = recipe(tmp_path, tiny_model_dir, extra=extra)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert expected in " ".join(result.output.split()) and "pref.yaml:" in result.output


def test_prompt_tuning_is_refused_naming_the_methods_that_train(tmp_path, tiny_model_dir):
    result = CliRunner().invoke(app, ["validate", str(recipe(tmp_path, tiny_model_dir, method="prompt"))])
    assert result.exit_code == 2
    assert "method.name: `prompt` does not train on preference pairs; methods that do: lora" in " ".join(
        result.output.split()
    )


def test_wrong_data_for_the_task_is_exit_2(tmp_path, tiny_model_dir, chat_data):
    chat = recipe(tmp_path / "chat", tiny_model_dir)  # preference task on chat data
    text = chat.read_text().replace(str(tmp_path / "chat" / "train.jsonl"), str(chat_data["train"]))
    chat.write_text(text.replace(str(tmp_path / "chat" / "eval.jsonl"), str(chat_data["eval"])))
    result = run(chat)
    assert result.exit_code == 2
    assert "task is preference but the data is in chat format" in " ".join(result.output.split())

    sft = recipe(tmp_path / "sft", tiny_model_dir)  # SFT task on preference data
    sft.write_text(sft.read_text().replace("task: preference", "task: causal-lm"))
    result = run(sft)
    assert result.exit_code == 2 and "set task: preference" in " ".join(result.output.split())

    missing = recipe(tmp_path / "missing", tiny_model_dir)  # a pair without `rejected`, at line 1
    write_jsonl(tmp_path / "missing" / "train.jsonl", [{"prompt": "a", "chosen": "b"}, *pairs(8, seed=3)])
    result = run(missing)
    assert result.exit_code == 2
    assert "train.jsonl:1: rejected: missing field `rejected`" in " ".join(result.output.split())
