"""`ftkit eval` on tiny trained runs: the record it commits (shown by `ftkit show`, gated by `ftkit diff`), metrics
that equal independent computations (the run's own final eval loss, exact and answer match recomputed by hand from
the stored predictions, the inference API's answers), classification's report, and bad input refused with exit 2
and nothing written to the registry."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry
from tests.conftest import classification_rows, write_jsonl
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return generation_runs(tmp_path_factory, tiny_model_dir)


def ftkit(*args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def evaluate(*args: str) -> dict:
    result = ftkit("eval", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def stored(registry: Path, eval_id: str, name: str = "predictions.jsonl") -> list[dict]:
    """An artifact of an eval record, read from the registry's objects store."""
    with RunRegistry.open(registry, create=False) as reg:
        record = reg.load_eval(eval_id)
        artifact = next(a for a in record["artifacts"] if a["name"] == name)
        text = reg.artifact_path(artifact["sha256"]).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()] if name.endswith(".jsonl") else json.loads(text)


def normalised(text: str) -> str:
    """exact_match's documented rule, written out here: NFKC, casefold, whitespace runs to one space, ends
    trimmed, trailing . ! ? ; : , removed."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text.rstrip(".!?;:,").strip()


def state(registry: Path) -> tuple[str, frozenset]:
    """The registry's refs and every file under it: equal before and after means nothing was written."""
    refs = subprocess.run(["git", "-C", str(registry), "for-each-ref"], capture_output=True, text=True).stdout
    files = frozenset(str(p.relative_to(registry)) for p in registry.rglob("*") if p.is_file())
    return refs, files


def test_eval_with_base_records_what_the_run_itself_measured(runs):
    run = runs.lora
    document = evaluate(run["run_id"], "--data", runs.eval_file, "--base", "--max-new-tokens", "8",
                        "--registry", runs.registry)  # fmt: skip
    metrics, base = document["metrics"], document["base_metrics"]
    # The run's own final evaluation on the same file: same rows, same encoding, same loss loop.
    assert metrics["loss"] == pytest.approx(run["metrics"]["eval.loss"], abs=1e-5)
    assert base["loss"] == pytest.approx(run["metrics"]["base.eval.loss"], abs=1e-5)
    rows = stored(runs.registry, document["eval_id"])
    assert [row["line"] for row in rows] == list(range(1, 9))
    file_rows = [json.loads(line) for line in runs.eval_file.read_text().splitlines()]
    assert [row["reference"] for row in rows] == [r["messages"][-1]["content"] for r in file_rows]
    assert [row["prompt"] for row in rows] == [r["messages"][0]["content"] for r in file_rows]
    by_hand = sum(normalised(r["prediction"]) == normalised(r["reference"]) for r in rows) / len(rows)
    assert metrics["exact_match"] == pytest.approx(by_hand)
    base_by_hand = sum(normalised(r["base_prediction"]) == normalised(r["reference"]) for r in rows) / 8
    assert base["exact_match"] == pytest.approx(base_by_hand)
    # The predictions are the inference API's greedy answers.
    from ftkit.inference import generate, load_trained_model

    trained = load_trained_model(run["output_dir"])
    assert [row["prediction"] for row in rows[:2]] == [
        generate(trained, r["messages"][:-1], 8) for r in file_rows[:2]
    ]
    with RunRegistry.open(runs.registry, create=False) as reg:
        record = reg.load_eval(document["eval_id"])
    assert record["run"] == run["run_id"] and record["base"] == document["base"]
    assert record["data"]["sha256"] == hashlib.sha256(runs.eval_file.read_bytes()).hexdigest()
    assert record["data"]["rows"] == 8 and record["data"]["format"] == "chat"
    assert record["metrics"] == pytest.approx(metrics) and record["base_metrics"] == pytest.approx(base)
    assert record["settings"]["max_new_tokens"] == 8 and record["settings"]["decoding"] == "greedy"
    assert document["record"] == f"evals/{run['run_id']}/{document['eval_id']}/eval.json"
    assert "evals.eval.exact_match" in document["fail_on_keys"]
    shown = ftkit("show", run["run_id"], "--registry", runs.registry)
    assert shown.exit_code == 0, shown.output
    assert f"Evaluation {document['eval_id']} on eval.jsonl (8 rows" in shown.stdout


def test_two_runs_on_one_file_line_up_in_diff_and_gate_it(runs):
    lora = evaluate(
        runs.lora["run_id"], "--data", runs.eval_file, "--metric", "loss", "--registry", runs.registry
    )
    prompt = evaluate(
        runs.prompt["run_id"], "--data", runs.eval_file, "--metric", "loss", "--registry", runs.registry
    )
    assert lora["metrics"]["loss"] == pytest.approx(runs.lora["metrics"]["eval.loss"], abs=1e-5)
    assert prompt["metrics"]["loss"] == pytest.approx(runs.prompt["metrics"]["eval.loss"], abs=1e-5)
    assert "exact_match" not in prompt["metrics"]  # --metric loss: nothing generated
    worse, better = sorted(
        [runs.lora, runs.prompt], key=lambda run: run["metrics"]["eval.loss"], reverse=True
    )
    gate = "evals.eval.loss>+0"
    passed = ftkit("diff", worse["run_id"], better["run_id"], "--fail-on", gate, "--registry", runs.registry)
    assert passed.exit_code == 0, passed.output
    tripped = ftkit("diff", better["run_id"], worse["run_id"], "--fail-on", gate, "--json",
                    "--registry", runs.registry)  # fmt: skip
    assert tripped.exit_code == 1, tripped.output
    payload = json.loads(tripped.stdout)
    assert [g["failed"] for g in payload["gates"]] == [True]


def test_answer_regex_on_gsm8k_style_rows(runs, tmp_path):
    rows = [
        (f"what is {a} plus {b}", f"{a} + {b} = {a + b}\n#### {a + b}") for a, b in ((40, 2), (7, 5), (1, 1))
    ]
    data = write_jsonl(tmp_path / "gsm.jsonl", [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in rows])  # fmt: skip
    document = evaluate(runs.lora["run_id"], "--data", data, "--answer-regex", "#### (.+)", "--metric",
                        "numeric_match", "--max-new-tokens", "6", "--registry", runs.registry)  # fmt: skip
    assert document["settings"]["answer_regex"] == "#### (.+)"
    assert document["settings"]["metrics"] == [
        "loss",
        "perplexity",
        "numeric_match",
    ]  # --metric given: as asked
    document = evaluate(runs.lora["run_id"], "--data", data, "--answer-regex", "#### (.+)", "--max-new-tokens",
                        "6", "--registry", runs.registry)  # fmt: skip
    assert "answer_match" in document["settings"]["metrics"]  # --answer-regex alone adds the metric it feeds
    predictions = stored(runs.registry, document["eval_id"])
    hits = []
    for row, (_, answer) in zip(predictions, rows, strict=True):
        found = re.findall("#### (.+)", row["prediction"])
        assert row["extracted"]["answer_match"]["reference"] == answer.split("#### ")[1]
        if found:
            hits.append(normalised(found[-1]) == normalised(answer.split("#### ")[1]))
        else:  # the tiny model writes no `####`: an extraction failure, scored 0, said so
            assert row["failures"]["answer_match"] == "no match for '#### (.+)' in the answer"
            hits.append(False)
    assert document["metrics"]["answer_match"] == pytest.approx(sum(hits) / len(hits))
    assert document["failed_rows"] == sum(1 for row in predictions if row["failures"])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tiny_encoder_dir):
    root = tmp_path_factory.mktemp("classifier-run")
    train = write_jsonl(root / "train.jsonl", classification_rows(64, seed=1))
    evaluation = write_jsonl(root / "eval.jsonl", classification_rows(16, seed=2))
    recipe = root / "cls.yaml"
    recipe.write_text(
        f"model: {tiny_encoder_dir}\ntask: classification\ndata:\n  train: {train}\n  eval: {evaluation}\n"
        "method:\n  name: full\ntraining:\n  epochs: 2\n  learning_rate: 5.0e-3\n  batch_size: 16\n"
        f"  max_seq_len: 32\noutput: {root / 'out'}\n"
    )
    result = ftkit("run", recipe, "--json", "--registry", root / "registry")
    assert result.exit_code == 0, result.output
    return root, evaluation, json.loads(result.stdout)


def test_classification_reports_accuracy_macro_f1_and_the_confusion_table(classifier, monkeypatch):
    root, evaluation, run = classifier
    monkeypatch.setenv("COLUMNS", "200")
    result = ftkit("eval", run["run_id"], "--data", evaluation, "--base", "--registry", root / "registry")
    assert result.exit_code == 0, result.output
    assert "Confusion (rows: true label, columns: predicted)" in result.stdout
    assert (
        "macro_f1" in result.stdout and "precision.warm" in result.stdout and "recall.cool" in result.stdout
    )
    document = evaluate(run["run_id"], "--data", evaluation, "--registry", root / "registry")
    assert document["metrics"]["accuracy"] == pytest.approx(run["metrics"]["eval.accuracy"])
    assert document["metrics"]["loss"] == pytest.approx(run["metrics"]["eval.loss"], abs=1e-5)
    rows = stored(root / "registry", document["eval_id"])
    truth = [row["label"] for row in classification_rows(16, seed=2)]
    assert [row["reference"] for row in rows] == truth
    labels = ["cool", "warm"]
    matrix = [
        [sum(r["reference"] == t and r["prediction"] == p for r in rows) for p in labels] for t in labels
    ]
    assert document["confusion"] == {"labels": labels, "matrix": matrix}
    assert document["metrics"]["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 16)
    f1 = []
    for index, label in enumerate(labels):
        tp, predicted, actual = matrix[index][index], matrix[0][index] + matrix[1][index], sum(matrix[index])
        precision, recall = (tp / predicted if predicted else 0.0), (tp / actual if actual else 0.0)
        assert document["metrics"][f"precision.{label}"] == pytest.approx(precision)
        assert document["metrics"][f"recall.{label}"] == pytest.approx(recall)
        f1.append(2 * tp / (predicted + actual))
    assert document["metrics"]["macro_f1"] == pytest.approx(sum(f1) / 2)
    assert stored(root / "registry", document["eval_id"], "confusion.json")["tuned"] == document["confusion"]


def test_a_plain_model_is_recorded_under_models_in_a_registry_created_for_it(tiny_model_dir, runs, tmp_path):
    registry = tmp_path / "new-registry"
    document = evaluate(tiny_model_dir, "--data", runs.eval_file, "--metric", "loss", "--registry", registry)
    assert document["created_registry"] is True and document["run"] is None
    assert document["record"] == f"evals/models/{document['eval_id']}/eval.json"
    with RunRegistry.open(registry, create=False) as reg:
        (record,) = reg.evals()
    assert record["model"] == str(tiny_model_dir) and record["run"] is None
    # the untrained model's loss is the run's base loss: the same rows, the same encoding
    assert record["metrics"]["loss"] == pytest.approx(runs.lora["metrics"]["base.eval.loss"], abs=1e-5)


def _refused(registry: Path, *args: str) -> str:
    """Run `ftkit eval ARGS`, expect exit 2 with nothing written to `registry`; return stderr."""
    before = state(registry)
    result = ftkit("eval", *args, "--registry", registry)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert state(registry) == before
    return result.stderr


def test_bad_input_exits_2_located_and_writes_nothing(runs, tmp_path):
    run_id = runs.lora["run_id"]
    completion = write_jsonl(
        tmp_path / "completion.jsonl", [{"prompt": "what is the color of the cat", "completion": "red"}]
    )
    error = _refused(runs.registry, run_id, "--data", completion)
    assert f"{completion}: the rows are in completion format" in error
    assert "was trained on chat data" in error and "evaluate it on chat rows" in error
    error = _refused(runs.registry, run_id, "--data", runs.eval_file, "--answer-regex", "#### (")
    assert "--answer-regex: the pattern '#### (' does not compile" in error
    error = _refused(runs.registry, run_id, "--data", runs.eval_file, "--metric", "accuracy")
    assert "--metric: `accuracy` is a classification metric, not for a causal-lm task" in error
    error = _refused(runs.registry, run_id, "--data", runs.eval_file, "--metric", "exact_mach")
    assert "unknown metric `exact_mach`; did you mean `exact_match`?" in error
    missing = tmp_path / "nowhere.jsonl"
    assert f"{missing}: no such data file" in _refused(runs.registry, run_id, "--data", missing)
    bad = tmp_path / "bad.jsonl"
    lines = runs.eval_file.read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], '{"messages": [', lines[2]]) + "\n")
    assert f"{bad}:3:" in _refused(runs.registry, run_id, "--data", bad)
    error = _refused(runs.registry, runs.lora["output_dir"], "--data", runs.eval_file, "--judge-model", "x")
    assert "--judge-model needs --judge" in error


def test_plain_model_base_and_a_run_without_weights_are_refused(runs, tiny_model_dir, tmp_path):
    error = _refused(runs.registry, tiny_model_dir, "--data", runs.eval_file, "--base")
    assert "is a plain model (model-folder), so it has no base model" in error
    from ftkit.registry.records import RunRecord, now_iso

    empty = tmp_path / "never-saved"
    empty.mkdir()
    with RunRegistry.open(runs.registry, create=False) as reg:
        run_id = reg.new_run_id()
        reg.commit_run(RunRecord(run_id=run_id, status="interrupted", name="cut-short", method="lora",
                                 started_at=now_iso(), ended_at=now_iso(), output_dir=str(empty)), artifacts=[])  # fmt: skip
    error = _refused(runs.registry, run_id, "--data", runs.eval_file)
    assert f"run {run_id} cut-short (interrupted) has no saved weights" in error
    assert f"ftkit rerun {run_id}" in error


def test_ctrl_c_records_nothing_and_exits_130(runs):
    import os
    import signal
    import sys

    before = state(runs.registry)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ftkit", "eval", runs.prompt["run_id"], "--data", str(runs.eval_file), "--base",
         "--max-new-tokens", "64", "--registry", str(runs.registry)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen = []
    for line in process.stdout:  # interrupt once the model starts loading: the run is mid-way
        seen.append(line)
        if line.startswith("… loading"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, "".join(seen) + out + err
    assert "interrupted by the user: nothing was recorded" in err
    assert "Traceback" not in err
    assert state(runs.registry) == before
