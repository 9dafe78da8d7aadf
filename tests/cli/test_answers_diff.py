"""`ftkit diff A B` shows how answers changed: fixed prompts and shared eval samples paired, A's tuned answer beside
B's, only the changed ones unless --all, in the table, --json and --md. Runs are committed by hand through the
registry API with a samples.jsonl (no model); runs without one diff as before."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.answers import answer_rows
from ftkit.registry.records import MAX_SAMPLE_CHARS
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record

OWL = [{"role": "system", "content": "one word"}, {"role": "user", "content": "what is the color of the owl"}]


def prompt(text, tuned, base="?"):
    return {"kind": "prompt", "prompt": text, "base": base, "tuned": tuned}


def sample(text, reference, tuned):
    return {"kind": "eval", "prompt": text, "reference": reference, "base": "?", "tuned": tuned, "scores": {}}


A_SAMPLES = [
    prompt("what is the color of the cat", "red"),
    prompt(OWL, "white"),
    prompt("only A asked this", "a"),
    sample("<|im_start|>user\nq1", "blue", "blue"),
    sample("<|im_start|>user\nq2", "green", "x | y"),
]
B_SAMPLES = [
    prompt("what is the color of the cat", "green"),
    prompt(OWL, "white"),
    prompt("only B asked this", "b"),
    sample("<|im_start|>user\nq2", "green", "green"),
    sample("<|im_start|>user\nq1", "blue", "blue"),
    sample("<|im_start|>user\nq3 (only B)", "red", "red"),
]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Runs A and B with answers, and C without samples.jsonl (recorded before answers were stored)."""
    registry = RunRegistry.open(tmp_path / "registry")
    monkeypatch.setenv("FTKIT_REGISTRY", str(registry.root))
    monkeypatch.setenv("COLUMNS", "200")
    ids = {}
    with registry:
        for side, samples in (("a", A_SAMPLES), ("b", B_SAMPLES), ("c", [])):
            record = make_record(registry, samples=samples)
            registry.commit_run(record)
            ids[side] = record.run_id
    ids["registry"] = registry
    return ids


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_samples_are_stored_as_an_optional_run_file(runs):
    registry = runs["registry"]
    assert registry.load_run(runs["a"])["samples"] == json.loads(json.dumps(A_SAMPLES))
    assert registry.load_run(runs["c"])["samples"] == []
    files = git(registry, "ls-tree", "-r", "--name-only", "HEAD", "runs/").split()
    assert f"runs/{runs['a']}/samples.jsonl" in files
    assert f"runs/{runs['c']}/samples.jsonl" not in files  # no answers, no file: older runs stay whole


def test_diff_json_pairs_changed_answers_only(runs):
    result = invoke("diff", runs["a"], runs["b"], "--json")
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)["answers"]
    shown = [(row["kind"], row["label"], row["a"], row["b"]) for row in answers["rows"]]
    assert shown == [
        ("prompt", "what is the color of the cat", "red", "green"),
        ("prompt", "only A asked this", "a", None),
        ("prompt", "only B asked this", None, "b"),
        ("eval", "<|im_start|>user\nq2", "x | y", "green"),
    ]
    # paired: 4 fixed prompts + the 2 eval samples both runs answered (q3 only in B is left out)
    assert answers["paired"] == 6 and answers["unchanged"] == 2
    assert answers["rows"][3]["reference"] == "green"


def test_diff_all_shows_unchanged_answers_too(runs):
    answers = json.loads(invoke("diff", runs["a"], runs["b"], "--json", "--all").stdout)["answers"]
    labels = [(row["label"], row["changed"]) for row in answers["rows"]]
    assert ("system: one word / user: what is the color of the owl", False) in labels
    assert ("<|im_start|>user\nq1", False) in labels
    assert len(labels) == 6


def test_diff_table_and_markdown_show_the_changed_answer(runs):
    table = invoke("diff", runs["a"], runs["b"]).output
    assert "Answers (changed)" in table
    [line] = [line for line in table.splitlines() if line.startswith("what is the color of the cat")]
    assert line.split("\t")[-2:] == ["red", "green"]
    assert "Answers: 2 of 6 unchanged (--all shows them)" in table
    markdown = invoke("diff", runs["a"], runs["b"], "--md").output
    assert "#### Answers (changed)" in markdown
    assert "| what is the color of the cat |  | red | green |" in markdown
    assert "| <\\|im_start\\|>user ↵ q2 | green | x \\| y | green |" in markdown  # pipes escaped, one line
    assert "2 of 6 answers unchanged." in markdown


def test_runs_without_answers_diff_as_before(runs):
    result = invoke("diff", runs["c"], runs["c"], "--json")
    assert json.loads(result.stdout)["answers"] == {"rows": [], "unchanged": 0, "paired": 0}
    assert "Answers" not in invoke("diff", runs["c"], runs["a"]).output
    assert "Answers" not in invoke("diff", runs["c"], runs["a"], "--md").output


def test_repeated_prompts_pair_in_order_and_long_answers_are_cut(tmp_path):
    a = [sample("same", "r", "one"), sample("same", "r", "two")]
    b = [sample("same", "r", "one"), sample("same", "r", "TWO")]
    assert [(row["a"], row["b"]) for row in answer_rows(a, b)["rows"]] == [("two", "TWO")]
    registry = RunRegistry.open(tmp_path / "registry")
    with registry:
        record = make_record(registry, samples=[prompt("long", "x" * (MAX_SAMPLE_CHARS + 500))])
        registry.commit_run(record)
    stored = registry.load_run(record.run_id)["samples"][0]["tuned"]
    assert stored == "x" * MAX_SAMPLE_CHARS + "…"


def test_show_lists_the_fixed_prompts_answers_and_counts_the_eval_samples(runs):
    table = invoke("show", runs["a"]).output
    assert "Answers to the fixed prompts" in table
    [line] = [line for line in table.splitlines() if line.startswith("what is the color of the cat")]
    assert line.split("\t") == ["what is the color of the cat", "?", "red"]
    assert "system: one word / user: what is the color of the owl\t?\twhite" in table
    assert "2 generated eval sample(s) stored" in table
    shown = json.loads(invoke("show", runs["a"], "--json").stdout)
    assert shown["samples"] == A_SAMPLES  # every stored row, as stored
    assert "Answers" not in invoke("show", runs["c"]).output  # recorded without answers: no section
