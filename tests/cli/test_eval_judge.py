"""`ftkit eval --judge`: a chat-completions server started by the test on 127.0.0.1 grades the tiny runs' answers
(PASS when the answer equals the reference), so the judge's pass rate must equal exact match's and agree with it
fully; the API key reaches the server but never the registry; pairwise mode between two runs gives the win, loss
and tie rates counted by hand; the tiny model as a local judge runs end to end, its junk verdicts counted unparsed.

The eval files are built from the runs' own greedy answers (deterministic): a row's reference is set to the run's
answer on some rows and to a text no model writes on the others, so the expected verdicts are known."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.cli.test_eval_command import state, stored
from tests.evaluation.test_judge_http import KEY, PAIRWISE, SINGLE, JudgeServer
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NEVER = "zzz no model writes this"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return generation_runs(tmp_path_factory, tiny_model_dir)


@pytest.fixture
def serve():
    servers = []

    def start(mode: str) -> JudgeServer:
        server = JudgeServer(mode)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def evaluate(*args) -> dict:
    result = CliRunner().invoke(app, ["eval", *[str(a) for a in args], "--json"])
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def answers(runs) -> dict[str, list[str]]:
    """Each run's greedy answers (6 tokens) to the shared eval file's rows."""
    found = {}
    for method in ("lora", "prompt"):
        run_id = getattr(runs, method)["run_id"]
        document = evaluate(run_id, "--data", runs.eval_file, "--metric", "exact_match", "--max-new-tokens", "6",
                            "--registry", runs.registry)  # fmt: skip
        found[method] = [row["prediction"] for row in stored(runs.registry, document["eval_id"])]
    return found


def rewrite(runs, path: Path, references: list[str]) -> Path:
    """The shared eval file with each row's reference replaced."""
    rows = [json.loads(line) for line in runs.eval_file.read_text().splitlines()]
    for row, reference in zip(rows, references, strict=True):
        row["messages"][-1]["content"] = reference
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_http_judge_pass_rate_equals_exact_match_and_the_key_stays_out(runs, answers, serve, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("FTKIT_JUDGE_API_KEY", KEY)
    prompt = answers["prompt"]  # the LoRA run answers with an empty string: no reference can equal it
    references = [a if i % 2 == 0 and a.strip() else NEVER for i, a in enumerate(prompt)]
    expected = sum(r != NEVER for r in references) / len(references)
    assert 0 < expected < 1
    data = rewrite(runs, tmp_path / "judged.jsonl", references)
    rubric = tmp_path / "rubric.md"
    rubric.write_text(SINGLE)
    server = serve("match")
    document = evaluate(runs.prompt["run_id"], "--data", data, "--max-new-tokens", "6", "--judge", server.url,
                        "--judge-model", "judge-x", "--rubric", rubric, "--registry", runs.registry)  # fmt: skip
    metrics = document["metrics"]
    assert metrics["exact_match"] == pytest.approx(expected)
    assert metrics["judge.pass_rate"] == pytest.approx(expected)
    assert metrics["judge.judged"] == 8 and metrics["judge.unparsed"] == 0
    assert metrics["judge.agreement.exact_match"] == pytest.approx(100.0)
    assert metrics["judge.kappa.exact_match"] == pytest.approx(1.0)
    assert document["judge"]["agreement"]["exact_match"]["counts"]["judge_only"] == 0
    # what the server received: the user's question (not the chat-templated prompt), the model name, the key
    assert len(server.requests) == 8
    first = server.requests[0]
    assert first["headers"]["Authorization"] == f"Bearer {KEY}" and first["body"]["model"] == "judge-x"
    questions = [
        json.loads(line)["messages"][0]["content"] for line in runs.eval_file.read_text().splitlines()
    ]
    sent = [re.search("Q=<<(.*?)>>", r["body"]["messages"][-1]["content"]).group(1) for r in server.requests]
    assert sorted(sent) == sorted(questions)  # requests go 4 at a time, in any order
    transcript = stored(runs.registry, document["eval_id"], "judge.jsonl")
    assert [t["verdict"] for t in transcript] == ["PASS" if r != NEVER else "FAIL" for r in references]
    assert all(t["judge_raw"] and t["judge_messages"] for t in transcript)
    assert document["settings"]["judge"]["judge"] == f"{server.url}/chat/completions model=judge-x"
    # the key is in no registry file, object or commit
    log = subprocess.run(["git", "-C", str(runs.registry), "log", "--all", "-p"], capture_output=True,
                         text=True).stdout  # fmt: skip
    assert document["eval_id"] in log and KEY not in log
    for path in runs.registry.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert KEY.encode() not in path.read_bytes(), path


def test_pairwise_between_two_runs_counts_wins_losses_and_ties(runs, answers, serve, tmp_path):
    lora, prompt = answers["lora"], answers["prompt"]
    references = [prompt[i] if i % 2 == 0 and prompt[i].strip() else NEVER for i in range(8)]
    data = rewrite(runs, tmp_path / "pairs.jsonl", references)
    rubric = tmp_path / "pairwise.md"
    rubric.write_text(PAIRWISE)
    server = serve("pairwise-match")
    found = {}
    for a, b in (("prompt", "lora"), ("lora", "prompt")):  # each run as A in turn: the rates must mirror
        document = evaluate(getattr(runs, a)["run_id"], "--data", data, "--max-new-tokens", "6", "--judge",
                            server.url, "--judge-model", "judge-x", "--rubric", rubric, "--judge-pairwise",
                            getattr(runs, b)["run_id"], "--registry", runs.registry)  # fmt: skip
        found[a] = document
        settings = document["settings"]["judge"]
        assert settings["mode"] == "pairwise" and settings["other_run"] == getattr(runs, b)["run_id"]
        assert [row["other_prediction"] for row in stored(runs.registry, document["eval_id"])] == answers[b]
    assert len(server.requests) == 32  # 8 rows, both orders, twice
    # By hand: the server names the position holding the reference; both orders agree only when one answer is it.
    outcomes = [
        "A" if p == r != q else "B" if q == r != p else "tie"
        for p, q, r in zip(prompt, lora, references, strict=True)
    ]
    assert "A" in outcomes and "tie" in outcomes
    metrics = found["prompt"]["metrics"]
    assert metrics["judge_pairwise.win_rate"] == pytest.approx(outcomes.count("A") / 8)
    assert metrics["judge_pairwise.loss_rate"] == pytest.approx(outcomes.count("B") / 8)
    assert metrics["judge_pairwise.tie_rate"] == pytest.approx(outcomes.count("tie") / 8)
    assert metrics["judge_pairwise.position_consistency"] == pytest.approx(1.0)
    mirrored = found["lora"]["metrics"]
    assert mirrored["judge_pairwise.loss_rate"] == pytest.approx(metrics["judge_pairwise.win_rate"])
    assert mirrored["judge_pairwise.win_rate"] == pytest.approx(metrics["judge_pairwise.loss_rate"])
    transcript = stored(runs.registry, found["prompt"]["eval_id"], "judge.jsonl")
    assert [t["outcome"] for t in transcript] == outcomes
    assert [t["orders"]["ba"]["position"] for t in transcript] == [
        "2" if o == "A" else "tie" for o in outcomes
    ]


def test_the_tiny_model_as_a_local_judge_runs_end_to_end(runs, tiny_model_dir, tmp_path):
    rubric = tmp_path / "short.md"
    rubric.write_text("Q: {prompt}\nA: {answer}\nPASS?")
    document = evaluate(runs.lora["run_id"], "--data", runs.eval_file, "--max-rows", "3", "--max-new-tokens", "4",
                        "--judge", tiny_model_dir, "--rubric", rubric, "--judge-max-new-tokens", "6",
                        "--registry", runs.registry)  # fmt: skip
    metrics = document["metrics"]
    assert (metrics["judge.rows"], metrics["judge.judged"], metrics["judge.unparsed"]) == (3, 0, 3)
    assert "judge.pass_rate" not in metrics and "judge.agreement.exact_match" not in metrics
    assert document["judge"]["agreement"]["exact_match"]["skipped"] == 3
    transcript = stored(runs.registry, document["eval_id"], "judge.jsonl")
    assert [t["parse_error"] for t in transcript] == ["no VERDICT line"] * 3
    assert document["settings"]["judge"]["judge"].startswith(str(tiny_model_dir))


def test_judge_options_are_checked_before_anything_runs(runs, tmp_path):
    before = state(runs.registry)
    args = [runs.lora["run_id"], "--data", runs.eval_file, "--registry", runs.registry]
    cases = [
        (["--judge", "http://127.0.0.1:9/v1"], "name the model the endpoint should use with --judge-model"),
        (["--judge-pairwise", runs.prompt["run_id"]], "--judge-pairwise needs --judge"),
        (["--judge", "http://127.0.0.1:9/v1", "--judge-model", "x", "--rubric", tmp_path / "none.md"],
         "rubric file"),
    ]  # fmt: skip
    for extra, message in cases:
        result = CliRunner().invoke(app, ["eval", *[str(a) for a in args + extra]])
        assert result.exit_code == 2, result.output
        assert message in result.stderr
    assert state(runs.registry) == before
