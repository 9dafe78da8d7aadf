"""`ftkit generate` on tiny trained runs: its answers are the inference API's (LoRA, and prompt tuning decoded
without a KV cache), and bad input stops it with a located message before anything is generated."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.inference import generate, load_trained_model
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPTS = ["what is the color of the cat", "what is the color of the owl", "hi there"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return generation_runs(tmp_path_factory, tiny_model_dir)


def cli(*args: str):
    return CliRunner().invoke(app, ["generate", *args])


def json_lines(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_answers_equal_the_inference_api(runs, method):
    run = getattr(runs, method)
    args = [run["run_id"], "--registry", str(runs.registry), "--max-new-tokens", "10", "--batch-size", "2"]
    rows = json_lines(cli(*args, *[x for p in PROMPTS for x in ("--prompt", p)], "--json"))
    trained = load_trained_model(run["output_dir"])  # the API, one prompt at a time: the reference
    assert [row["answer"] for row in rows] == [generate(trained, prompt, 10) for prompt in PROMPTS]
    assert [row["prompt"] for row in rows] == PROMPTS
    assert {row["run_id"] for row in rows} == {run["run_id"]}
    # The run's own eval file: the last assistant turn is the reference, the rest is the prompt.
    rows = json_lines(cli(*args, "--file", str(runs.eval_file), "--json"))
    eval_rows = [json.loads(line) for line in runs.eval_file.read_text().splitlines()]
    assert len(rows) == len(eval_rows) == 8
    for row, eval_row in zip(rows, eval_rows, strict=True):
        assert row["prompt"] == eval_row["messages"][:-1]
        assert row["reference"] == eval_row["messages"][-1]["content"]
        assert row["answer"] == generate(trained, eval_row["messages"][:-1], 10)
    assert rows[2]["source"] == f"{runs.eval_file}:3"


def test_raw_prompts_skip_the_chat_template(runs):
    run = runs.lora
    text = "<|im_start|>user\nwhat is the color of the cat<|im_end|>\n<|im_start|>assistant\n"
    rows = json_lines(cli(run["output_dir"], "--prompt", text, "--raw", "--max-new-tokens", "8", "--json"))
    templated = json_lines(cli(run["output_dir"], "--prompt", PROMPTS[0], "--max-new-tokens", "8", "--json"))
    assert rows[0]["answer"] == templated[0]["answer"]  # the same text the template renders
    assert rows[0]["target"] == templated[0]["target"]


def test_human_output_shows_each_prompt_then_its_answer(runs, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("what is the color of the cat\n\nhi there\n")
    result = cli(runs.lora["run_id"], "--registry", str(runs.registry), "--file", str(prompts),
                 "--max-new-tokens", "6")  # fmt: skip
    assert result.exit_code == 0, result.output
    trained = load_trained_model(runs.lora["output_dir"])
    expected = [generate(trained, prompt, 6) for prompt in ("what is the color of the cat", "hi there")]
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"── prompt 1 ({prompts}:1)",
        "what is the color of the cat",
        "── answer 1",
        expected[0],
    ]
    assert lines[5:9] == [f"── prompt 2 ({prompts}:3)", "hi there", "── answer 2", expected[1]]
    assert f"run {runs.lora['run_id']}" in result.stderr + result.stdout  # which model answered


def test_a_bad_prompts_line_is_located_and_nothing_is_generated(runs, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{"text": "no prompt key"}\n{"messages": "not a list"}\n{broken\n')
    result = cli(runs.lora["output_dir"], "--file", str(prompts), "--json")
    assert result.exit_code == 2
    assert f"{prompts}: 3 bad row(s); nothing was generated" in result.stderr
    assert (
        f"{prompts}:2: no prompt: the row needs one of prompt, question, messages, instruction"
        in result.stderr
    )
    assert f"{prompts}:3: messages: must be a non-empty list" in result.stderr
    assert f"{prompts}:4: " in result.stderr
    assert '"answer"' not in result.stdout
    conversation = tmp_path / "chat.jsonl"
    conversation.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    raw = cli(runs.lora["output_dir"], "--file", str(conversation), "--raw")
    assert (
        raw.exit_code == 2
        and f"{conversation}:1: messages: a conversation needs the chat template" in raw.stderr
    )


def test_unknown_runs_runs_without_weights_and_classifiers_are_refused(runs, tmp_path, tiny_model_dir):
    unknown = cli("no-such-run", "--registry", str(runs.registry), "--prompt", "hi")
    assert unknown.exit_code == 2 and "no-such-run" in unknown.stderr
    from ftkit.registry.records import RunRecord, now_iso
    from ftkit.registry.store import RunRegistry

    broken = tmp_path / "broken-registry"  # its own registry: the shared one's @latest stays the runs' own
    with RunRegistry.open(broken, create=True) as registry:
        run_id = registry.new_run_id()
        registry.commit_run(RunRecord(run_id=run_id, status="failed", name="broke-early", method="lora",
                                      started_at=now_iso(), ended_at=now_iso(), error="CUDA out of memory",
                                      output_dir=str(tmp_path / "never-written")), artifacts=[])  # fmt: skip
    no_weights = cli(run_id, "--registry", str(broken), "--prompt", "hi")
    assert no_weights.exit_code == 2
    assert f"run {run_id} broke-early (failed) has no saved weights" in no_weights.stderr
    assert "CUDA out of memory" in no_weights.stderr and f"ftkit rerun {run_id}" in no_weights.stderr
    from transformers import AutoModelForSequenceClassification

    classifier = tmp_path / "classifier"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).save_pretrained(
        classifier
    )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, classifier / name)
    refused = cli(str(classifier), "--prompt", "hi")
    assert refused.exit_code == 2
    assert "is a classification model" in refused.stderr and "t.labels[" in refused.stderr
    assert "Traceback" not in refused.output


def test_a_plain_model_folder_generates(tiny_model_dir):
    from tests.test_inference_targets import reference_greedy

    rows = json_lines(cli(str(tiny_model_dir), "--prompt", PROMPTS[0], "--max-new-tokens", "12", "--json"))
    assert rows[0]["answer"] == reference_greedy(tiny_model_dir, PROMPTS[0])
    assert rows[0]["run_id"] is None


def test_a_gguf_file_generates(tiny_model_dir, tmp_path):
    from tests.test_inference_targets import reference_greedy, write_tiny_gguf

    path = write_tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    rows = json_lines(cli(str(path), "--prompt", PROMPTS[1], "--max-new-tokens", "12", "--json"))
    assert rows[0]["answer"] == reference_greedy(tiny_model_dir, PROMPTS[1])
    assert rows[0]["target"] == str(path)
