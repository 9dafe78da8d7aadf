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
