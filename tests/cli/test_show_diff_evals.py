"""`ftkit show` lists a run's evaluation records, `ftkit diff` lines them up by data fingerprint and gates on them
(`--fail-on 'evals.test.answer_match<-0.05'` exits 1 when tripped), and a garbled record is reported, never a
crash, and never breaks `ftkit runs`. Records are committed by hand through the registry API (no model)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record
from tests.registry.damage import break_object
from tests.registry.evalrecords import make_eval, write_data


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Runs A and B, each evaluated on test.jsonl (B newer twice: the newest counts), B also on another
    test.jsonl (same stem, other bytes), A on dev.jsonl; plus the `ftkit` invoker."""
    registry = RunRegistry.open(tmp_path / "registry")
    monkeypatch.setenv("FTKIT_REGISTRY", str(registry.root))
    monkeypatch.setenv("COLUMNS", "200")
    ids = {}
    with registry:
        for side, loss in (("a", 2.0), ("b", 1.5)):
            record = make_record(registry, loss=loss)
            registry.commit_run(record)
            ids[side] = record.run_id
        test = write_data(tmp_path / "data" / "test.jsonl", rows=3)
        other = write_data(tmp_path / "other" / "test.jsonl", rows=3, salt="x")
        dev = write_data(tmp_path / "data" / "dev.jsonl", rows=2, salt="dev")

        def commit(run, metrics, data):
            return registry.commit_eval(*make_eval(tmp_path, run, metrics, data))

        ids["a_test"] = commit(ids["a"], {"answer_match": 0.8, "exact_match": 0.5}, test)
        ids["a_dev"] = commit(ids["a"], {"answer_match": 0.3}, dev)
        ids["b_test_old"] = commit(ids["b"], {"answer_match": 0.95, "exact_match": 0.9}, test)
        ids["b_test"] = commit(ids["b"], {"answer_match": 0.7, "exact_match": 0.6}, test)
        ids["b_other"] = commit(ids["b"], {"answer_match": 0.1}, other)
    runner = CliRunner()
    ids["root"] = str(registry.root)
    ids["test_sha"] = test["sha256"]

    def invoke(*args: str):
        return runner.invoke(
            __import__("ftkit.cli.app", fromlist=["app"]).app, list(args), catch_exceptions=False
        )

    return ids, invoke


def test_show_lists_each_record_with_tuned_and_base(setup):
    ids, ftkit = setup
    result = ftkit("show", ids["a"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    titles = [line for line in lines if line.startswith("# Evaluation ")]
    assert [t.split()[2] for t in titles] == [ids["a_dev"], ids["a_test"]]  # newest first
    assert (
        f"on test.jsonl (3 rows, sha256 {ids['test_sha'][:12]}, " in titles[1]
        and "base tiny-llama" in titles[1]
    )
    table = lines[lines.index(titles[1]) + 1 : lines.index(titles[1]) + 4]
    assert table[0].split("\t") == ["metric", "tuned", "base", "Δ"]
    assert table[1].split("\t") == ["answer_match", "0.8", "0.2", "0.6"]  # base = tuned / 4 (evalrecords)
    assert table[2].split("\t") == ["exact_match", "0.5", "0.125", "0.375"]
    payload = json.loads(ftkit("show", ids["a"], "--json").stdout)
    assert [r["id"] for r in payload["evals"]] == [ids["a_dev"], ids["a_test"]]
    assert payload["evals"][1]["metrics"] == {"answer_match": 0.8, "exact_match": 0.5}
    assert payload["evals"][1]["artifacts"][0]["name"] == "predictions.jsonl"


def test_diff_lines_up_records_on_the_same_data(setup):
    ids, ftkit = setup
    payload = json.loads(ftkit("diff", ids["a"], ids["b"], "--json").stdout)
    rows = {r["metric"]: (r["a"], r["b"], r["verdict"]) for r in payload["evals"]["metrics"]}
    assert rows == {
        "evals.test.answer_match": (0.8, 0.7, "worse"),  # B's newest record on test.jsonl, not the 0.95 one
        "evals.test.exact_match": (0.5, 0.6, "better"),
    }
    assert payload["evals"]["records"] == [
        {
            "key": "evals.test",
            "data": "test.jsonl",
            "sha256": ids["test_sha"],
            "a": ids["a_test"],
            "b": ids["b_test"],
        }
    ]
    notes = [n for n in payload["provenance"] if n.startswith("eval data")]
    assert notes == [
        "eval data dev.jsonl ("
        + git(ids["root"], "show", f"main:evals/{ids['a']}/{ids['a_dev']}/eval.json").split('"sha256": "')[1][
            :12
        ]
        + "): only A has an eval record on it",
        "eval data test.jsonl (" + _sha_of(ids, "b", "b_other")[:12] + "): only B has an eval record on it",
    ]
    human = ftkit("diff", ids["a"], ids["b"])
    assert "# Evaluations on the same data (evals.test = test.jsonl)" in human.stdout
    assert "evals.test.answer_match\t0.8\t0.7\t-0.1\t-12.5\n" in human.stdout
    markdown = ftkit("diff", ids["a"], ids["b"], "--md").stdout
    assert (
        "#### Evaluations on the same data" in markdown
        and "| `evals.test.exact_match` | 0.5 | 0.6 |" in markdown
    )


def _sha_of(ids: dict, run: str, record: str) -> str:
    text = git(ids["root"], "show", f"main:evals/{ids[run]}/{ids[record]}/eval.json")
    return json.loads(text)["data"]["sha256"]


def test_fail_on_gates_an_eval_metric(setup):
    ids, ftkit = setup
    tripped = ftkit("diff", ids["a"], ids["b"], "--fail-on", "evals.test.answer_match<-0.05")
    assert tripped.exit_code == 1, tripped.output
    assert "evals.test.answer_match: 0.8 → 0.7 (change -0.1) breaks bound <-0.05" in tripped.output
    within = ftkit("diff", ids["a"], ids["b"], "--fail-on", "evals.test.answer_match<-0.2", "--json")
    assert within.exit_code == 0 and json.loads(within.stdout)["gates"][0]["failed"] is False
    missing = ftkit("diff", ids["a"], ids["b"], "--fail-on", "evals.dev.answer_match<-0.05")
    assert (
        missing.exit_code == 2 and "missing from run A" in missing.output and "ftkit eval" in missing.output
    )


def test_a_garbled_record_is_shown_damaged_and_runs_still_lists(setup):
    ids, ftkit = setup
    sha = git(ids["root"], "rev-parse", f"main:evals/{ids['a']}/{ids['a_test']}/eval.json").strip()
    break_object(ids["root"], sha, "garbage")
    show = ftkit("show", ids["a"])
    assert show.exit_code == 0, show.output
    assert f"evaluation {ids['a_test']} of run {ids['a']} is damaged" in show.stderr
    assert [line.split()[2] for line in show.stdout.splitlines() if line.startswith("# Evaluation ")] == [
        ids["a_dev"]
    ]
    payload = json.loads(ftkit("show", ids["a"], "--json").stdout)
    [damaged] = [r for r in payload["evals"] if "damage" in r]
    assert damaged["id"] == ids["a_test"] and damaged["damage"][0]["file"].endswith("/eval.json")
    runs = ftkit("runs", "--json")
    assert runs.exit_code == 0 and {r["id"] for r in json.loads(runs.stdout)["runs"]} == {ids["a"], ids["b"]}
    diff = ftkit("diff", ids["a"], ids["b"], "--json")
    assert diff.exit_code == 0
    assert (
        f"eval {ids['a_test']} of A is damaged and left out (`ftkit registry verify` lists it)"
        in (json.loads(diff.stdout)["provenance"])
    )
    verify = ftkit("registry", "verify")
    assert verify.exit_code == 1 and f"eval {ids['a_test']}:" in verify.stdout


def test_verify_counts_records(setup):
    ids, ftkit = setup
    result = ftkit("registry", "verify")
    assert result.exit_code == 0, result.output
    assert "registry OK: 2 runs, " in result.stdout and ", 5 eval record(s) verified" in result.stdout
