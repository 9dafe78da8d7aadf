"""A loaded local model as the judge: the tiny random Llama answers junk, so every verdict is unparsed and counted,
never guessed; its prompts go through the chat template and greedy decoding equals transformers' own."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftkit.evaluation.judge import LocalJudge, judge_answers, judge_pairwise

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = [
    {"prompt": "what is the color of the cat", "reference": "red", "prediction": "red"},
    {"prompt": "what is the color of the dog", "reference": "green", "prediction": "blue"},
    {"prompt": "what is the color of the owl", "reference": "yellow", "prediction": "the owl is yellow"},
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(
        tiny_model_dir
    )


def test_tiny_model_junk_verdicts_are_counted_unparsed(tiny):
    model, tokenizer = tiny
    judge = LocalJudge(model, tokenizer, max_new_tokens=12, batch_size=2)
    metrics, per_row = judge_answers(judge, ROWS)
    assert metrics == {"judge.rows": 3, "judge.judged": 0, "judge.unparsed": 3}
    assert all(row["verdict"] is None and row["score"] is None for row in per_row)
    assert all(row["parse_error"] == "no VERDICT line" for row in per_row)
    assert all(isinstance(row["judge_raw"], str) for row in per_row)
    pair_metrics, pairs = judge_pairwise(
        judge,
        [
            {"prompt": r["prompt"], "reference": r["reference"], "answer_a": "red", "answer_b": "blue"}
            for r in ROWS
        ],
    )
    assert pair_metrics == {"judge.rows": 3, "judge.judged": 0, "judge.unparsed": 3}
    assert [pair["outcome"] for pair in pairs] == ["unparsed"] * 3


def test_local_judge_is_greedy_through_the_chat_template(tiny):
    import torch

    model, tokenizer = tiny
    messages = [[{"role": "user", "content": f"grade {word}"}] for word in ("red", "a longer answer here")]
    # independent reference: transformers' greedy generate on the ChatML text, one prompt at a time
    expected = []
    for conversation in messages:
        text = "<|im_start|>user\n" + conversation[0]["content"] + "<|im_end|>\n<|im_start|>assistant\n"
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
            )
        expected.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    assert LocalJudge(model, tokenizer, max_new_tokens=6).complete(messages) == expected
    assert LocalJudge(model, tokenizer, max_new_tokens=6, use_cache=False).complete(messages) == expected


def test_from_trained_takes_the_methods_cache_rule(tiny):
    from ftkit.inference import TrainedModel
    from ftkit.methods.catalog import get_method

    model, tokenizer = tiny
    for name, use_cache in (("lora", True), ("prefix", False)):
        method = get_method(name)
        trained = TrainedModel(model, tokenizer, method, method.parse_options({}), {}, Path("out/run"))
        judge = LocalJudge.from_trained(trained, max_new_tokens=4)
        assert judge.use_cache is use_cache and judge.description == str(Path("out/run"))


def test_a_tokenizer_without_chat_template_gets_plain_paragraphs(tiny):
    import copy

    from ftkit.evaluation.judge_backends import render_chat

    plain = copy.copy(tiny[1])
    plain.chat_template = None
    messages = [{"role": "system", "content": "Be strict."}, {"role": "user", "content": "Grade: 4"}]
    assert render_chat(plain, messages) == "Be strict.\n\nGrade: 4\n\n"
    assert tiny[1].chat_template  # the shared fixture's tokenizer is untouched
