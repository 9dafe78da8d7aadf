"""Strict exact match: its rules, and the run's `eval.exact_match` / `eval.exact_match_strict` against samples scored
independently.

`exact_match_strict` (ftkit 0.1.0's `exact_match`) compares after collapsing runs of whitespace and trimming the ends;
case and punctuation count. `exact_match` also folds case and drops trailing punctuation (tests/evaluation/
test_scoring.py has its rules).
End to end, the references of an eval file are planted from the base model's own greedy answers (computed here with
a plain forward-argmax loop), so the base score is known before the run starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ftkit.evaluation.scoring_text import exact_match_strict
from tests.conftest import ANIMALS, COLORS, chat_rows, write_jsonl, write_recipe


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("red", "red", True),
        ("  red\n", "red", True),  # ends trimmed
        ("red  fox", "red fox", True),  # runs of spaces collapse
        ("red\tfox\n\nowl", "red fox owl", True),  # tabs and newlines are whitespace too
        ("red\u00a0fox", "red fox", True),  # so is a no-break space (str.split)
        ("", "", True),
        ("   ", "", True),
        ("redfox", "red fox", False),  # whitespace between words is not dropped
        ("Red", "red", False),  # case counts
        ("RED FOX", "red fox", False),
        ("red.", "red", False),  # punctuation counts
        ("red, fox", "red fox", False),
        ('{"age": 30}', '{"age":30}', False),  # JSON spacing inside a line counts
        ("", "red", False),
        ("red fox", "red", False),  # a longer answer is not a match
    ],
)
def test_exact_match_strict_rules(prediction, reference, expected):
    assert exact_match_strict(prediction, reference) is expected
    assert exact_match_strict(reference, prediction) is expected  # symmetric


def _same(prediction: str, reference: str) -> bool:
    """The strict rule, restated independently: whitespace runs are one space, the ends are trimmed."""
    return re.sub(r"\s+", " ", prediction).strip() == re.sub(r"\s+", " ", reference).strip()


def _same_folded(prediction: str, reference: str) -> bool:
    """The normalised rule for these answers (ASCII words, no trailing punctuation): the strict rule, lower-cased."""
    return _same(prediction.lower(), reference.lower())


def _argmax_answers(model_dir: Path, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers by full forward passes: no generate(), no cache, no ftkit code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    stop = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    answers = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            new: list[int] = []
            for _ in range(max_new_tokens):
                token = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
                new.append(token)
                if token in stop:
                    break
            answers.append(tokenizer.decode(new, skip_special_tokens=True))
    return answers


def _planted(answer: str, index: int) -> tuple[str, bool]:
    """A reference for the base model's own answer, and whether it should match."""
    if index in (0, 2, 5, 8, 9):  # the same answer, other whitespace
        return " \n" + answer.replace(" ", " \t ") + "  ", True
    if index == 1:
        return answer.upper(), False  # case counts for the strict rule (not for exact_match)
    return answer + " more", False


def test_run_exact_match_equals_the_fraction_of_matching_samples(tmp_path, tiny_model_dir):
    """Base scores known in advance (strict: 3 of the 8 generated rows, normalised: those and the upper-cased row;
    rows 9-10 match but are not generated); the tuned scores equal the fraction of recorded samples that match,
    scored here with the rules restated."""
    from transformers import AutoTokenizer

    from ftkit.recipe.load import load_recipe
    from ftkit.train.callbacks import SilentReporter
    from ftkit.train.runner import execute_run

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    questions = [f"is the {animal} {color}" for animal in ANIMALS for color in COLORS]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    answers = _argmax_answers(tiny_model_dir, prompts, max_new_tokens=3)
    usable = [(q, a) for q, a in zip(questions, answers, strict=True) if a.strip() and a.upper() != a][:10]
    assert len(usable) == 10, answers
    planted = [_planted(answer, index) for index, (_, answer) in enumerate(usable)]
    rows = [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reference}]}
        for (question, _), (reference, _) in zip(usable, planted, strict=True)
    ]
    train = write_jsonl(tmp_path / "data" / "train.jsonl", chat_rows(32, seed=1))
    evaluation = write_jsonl(tmp_path / "data" / "eval.jsonl", rows)
    recipe = write_recipe(
        tmp_path / "recipe.yaml",
        tiny_model_dir,
        train,
        evaluation,
        extra="evaluation:\n  generate: 8\n  max_new_tokens: 3\n  batch_size: 1\n"
        "  metrics: [exact_match, exact_match_strict]\n",
    )
    # two steps at a negligible learning rate: the tuned answers stay the base answers, so both scores are known
    text = recipe.read_text().replace("max_steps: 12", "max_steps: 2")
    recipe.write_text(text.replace("learning_rate: 1.0e-2", "learning_rate: 1.0e-8"))

    result = execute_run(load_recipe(recipe), "exact-match", "exact-match", SilentReporter())

    assert result.status == "succeeded", result.error
    assert len(result.samples) == 8
    assert [s["reference"] for s in result.samples] == [reference for reference, _ in planted[:8]]
    assert [s["base"] for s in result.samples] == [answer for _, answer in usable[:8]]
    assert result.metrics["base.eval.exact_match_strict"] == pytest.approx(3 / 8)
    assert result.metrics["base.eval.exact_match"] == pytest.approx(4 / 8)
    tuned = [_same(s["tuned"], s["reference"]) for s in result.samples]
    assert tuned == [match for _, match in planted[:8]]
    assert result.metrics["eval.exact_match_strict"] == pytest.approx(sum(tuned) / len(tuned)) == 3 / 8
    folded = [_same_folded(s["tuned"], s["reference"]) for s in result.samples]
    assert folded == [match or index == 1 for index, (_, match) in enumerate(planted[:8])]
    assert result.metrics["eval.exact_match"] == pytest.approx(sum(folded) / len(folded)) == 4 / 8
