"""The read side of `ftkit ui`'s JSON API against a real server on a registry of real tiny-model runs: the runs
table, a run's page, live events of a running run, and compare, each checked against the registry's own records
read independently (git plumbing on the registry, and `ftkit show --json` / `ftkit diff --json` as subprocesses).
Unknown references and traversal strings are 404s; a run named `<script>` comes back verbatim as JSON."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import chat_rows, write_jsonl, write_recipe
from tests.ui.conftest import start_ui, stop_ui

SCRIPT_NAME = "<script>alert(1)</script>"
EXTRA = "evaluation:\n  generate: 2\n  max_new_tokens: 4\n  prompts:\n    - what is the color of the cat\n"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "--git-dir", str(root / ".git"), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def recorded(root: Path, run_id: str, name: str):
    """A run file as committed on `main` (parsed)."""
    text = git(root, "show", f"main:runs/{run_id}/{name}")
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def ftkit_json(root: Path, *args: str) -> dict:
    """`ftkit ARGS --json` in a subprocess (the CLI's own document, independent of the server)."""
    done = subprocess.run(
        [sys.executable, "-m", "ftkit", *args, "--json", "--registry", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get(server, path: str):
    """(status, headers, parsed JSON body) of a raw GET (the path reaches the server as written)."""
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", server.host)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(body)


@pytest.fixture(scope="module")
def registry_runs(tmp_path_factory, tiny_model_dir):
    """Run A (fixed prompt, 2 generated samples, tagged `best`), run B = `ftkit rerun A` with a higher learning
    rate and a `<script>` name, and a `running` run whose live events file the test writes; plus a server."""
    import torch

    from ftkit.registry.store import RunRegistry
    from ftkit.train.event_log import EventLog
    from tests.registry.conftest import make_record

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ui-runs")
    registry = root / "registry"
    train = write_jsonl(root / "data" / "train.jsonl", chat_rows(32, seed=1))
    evaluation = write_jsonl(root / "data" / "eval.jsonl", chat_rows(8, seed=2))
    recipe = write_recipe(root / "recipe.yaml", tiny_model_dir, train, evaluation, extra=EXTRA)
    runner = CliRunner()

    def cli(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--json", "--registry", str(registry)])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    a = cli("run", str(recipe), "--set", "training.max_steps=3")["run_id"]
    b = cli("rerun", a, "--set", "training.learning_rate=0.02", "--set", f"name={SCRIPT_NAME}")["run_id"]
    cli("tag", a, "best")
    torch.set_num_threads(threads)

    live_dir = root / "outputs" / "live"
    live_dir.mkdir(parents=True)
    with RunRegistry.open(registry) as reg:
        record = make_record(reg, status="running", output_dir=str(live_dir), metrics={}, history=[])
        reg.start_run(record)
    log = EventLog()
    log.open(live_dir)
    log.append({"time": "2026-01-01T00:00:00+00:00", "kind": "phase", "message": "training lora"})
    log.progress({"step": 1, "loss": 2.5, "tokens_per_sec": 100.0}, total_steps=10)
    log.progress({"step": 2, "loss": 2.25, "tokens_per_sec": 120.0}, total_steps=10)
    server = start_ui(registry)
    yield {"root": registry, "a": a, "b": b, "running": record.run_id, "log": log, "server": server}
    stop_ui(server)


def test_runs_table_matches_the_registry(registry_runs):
    root, server = registry_runs["root"], registry_runs["server"]
    status, headers, body = get(server, "/api/runs")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["server-timing"].startswith("app;dur=")
    ids = {
        line.split("\t")[1].rsplit("/", 1)[1] for line in git(root, "ls-tree", "main", "runs/").splitlines()
    }
    assert {row["id"] for row in body["runs"]} == ids and body["total"] == 3
    for row in body["runs"]:
        run, metrics = recorded(root, row["id"], "run.json"), recorded(root, row["id"], "metrics.json")
        assert (row["name"], row["status"], row["method"], row["model"]) == (
            run["name"],
            run["status"],
            run["method"],
            run["model"],
        )
        assert row["metrics"] == metrics and row["started_at"] == run["started_at"]
    rows = {row["id"]: row for row in body["runs"]}
    assert (
        rows[registry_runs["a"]]["tags"] == ["best"]
        and rows[registry_runs["b"]]["parent"] == registry_runs["a"]
    )
    assert rows[registry_runs["a"]]["progress"] is None
    assert rows[registry_runs["running"]]["progress"] == {
        "step": 2,
        "total_steps": 10,
        "phase": "training lora",
        "tokens_per_sec": 120.0,
        "loss": 2.25,
    }
    assert body["filters"]["status"] == ["running", "succeeded"] and body["filters"]["tag"] == ["best"]
    assert "eval.loss" in body["metric_keys"]


def test_runs_table_filters_and_sorts(registry_runs):
    root, server, a, b = (registry_runs[k] for k in ("root", "server", "a", "b"))
    losses = {rid: recorded(root, rid, "metrics.json")["eval.loss"] for rid in (a, b)}
    best_first = sorted(losses, key=losses.get)
    _, _, body = get(server, "/api/runs?sort=eval.loss")  # loss: lower is better, so ascending
    assert [row["id"] for row in body["runs"]] == [*best_first, registry_runs["running"]]
    _, _, body = get(server, "/api/runs?sort=eval.loss&order=desc&limit=1")
    assert [row["id"] for row in body["runs"]] == [best_first[-1]] and body["total"] == 3
    _, _, body = get(server, "/api/runs?status=running")
    assert [row["id"] for row in body["runs"]] == [registry_runs["running"]]
    _, _, body = get(server, "/api/runs?tag=best")
    assert [row["id"] for row in body["runs"]] == [a]
    _, _, body = get(server, "/api/runs?q=SCRIPT")
    assert [row["id"] for row in body["runs"]] == [b]
    _, _, body = get(server, "/api/runs?sort=name&order=asc")
    names = [row["name"] for row in body["runs"]]
    assert names == sorted(names, key=str.lower)
    status, _, body = get(server, "/api/runs?limit=many")
    assert status == 400 and "limit" in body["error"]


def test_run_page_is_show_json_plus_the_page_data(registry_runs):
    root, server, a, b = (registry_runs[k] for k in ("root", "server", "a", "b"))
    status, _, page = get(server, f"/api/runs/{b}")
    assert status == 200
    shown = ftkit_json(root, "show", b)
    for key in (
        "id",
        "run",
        "recipe",
        "resolved",
        "metrics",
        "history",
        "data",
        "lineage",
        "exports",
        "tags",
    ):
        assert page[key] == shown[key], key
    assert page["history"] == recorded(root, b, "history.jsonl")
    assert page["lineage"]["parent"]["id"] == a and page["run"]["name"] == SCRIPT_NAME
    assert page["progress"] is None
    # samples: the stored answers, each with a one-line label
    stored = recorded(root, b, "samples.jsonl")
    assert [(s["kind"], s["prompt"], s.get("tuned")) for s in page["samples"]] == [
        (s["kind"], s["prompt"], s.get("tuned")) for s in stored
    ]
    assert "what is the color of the cat" in [s["label"] for s in page["samples"] if s["kind"] == "prompt"]
    # the review's suggestion as `--set` overrides a button can send (the eval file repeats training rows)
    finding = next(f for f in page["review"]["findings"] if f["code"] == "eval_overlap")
    assert finding["next"]["overrides"] == ["data.eval=null", "data.eval_split=0.1"]
    assert finding["next"]["command"] == recorded(root, b, "review.json")["findings"][0]["command"]
    metrics = recorded(root, b, "metrics.json")
    loss = next(r for r in page["base_vs_tuned"] if r["metric"] == "eval.loss")
    assert (loss["base"], loss["tuned"]) == (metrics["base.eval.loss"], metrics["eval.loss"])
    live = [
        json.loads(line)
        for line in (Path(page["run"]["output_dir"]) / "events.jsonl").read_text().splitlines()
    ]
    assert page["events"] == live  # the live file, as `ftkit logs` prints it


def test_events_polling_follows_a_running_run(registry_runs):
    server, run_id, log = registry_runs["server"], registry_runs["running"], registry_runs["log"]
    status, _, first = get(server, f"/api/runs/{run_id}/events?after=0")
    assert status == 200 and first["status"] == "running"
    assert [e["kind"] for e in first["events"]] == ["phase", "progress", "progress"] and first["next"] == 3
    log.progress({"step": 3, "loss": 2.0, "tokens_per_sec": 130.0}, total_steps=10)
    _, _, later = get(server, f"/api/runs/{run_id}/events?after={first['next']}")
    assert [e["step"] for e in later["events"]] == [3] and later["next"] == 4
    assert later["progress"]["step"] == 3
    _, _, page = get(server, f"/api/runs/{run_id}")
    assert page["progress"]["step"] == 3 and page["progress"]["total_steps"] == 10
    assert [row["loss"] for row in page["history"]] == [2.5, 2.25, 2.0]  # live curve before the final record


def test_compare_is_diff_json_plus_curves_and_samples(registry_runs):
    root, server, a, b = (registry_runs[k] for k in ("root", "server", "a", "b"))
    status, _, body = get(server, f"/api/compare?a={a}&b=best")  # any reference works; `best` is A's tag
    assert status == 200 and body["b"]["id"] == a
    status, _, body = get(server, f"/api/compare?a={a}&b={b}")
    diffed = ftkit_json(root, "diff", a, b)
    for key in ("a", "b", "config", "metrics", "provenance", "answers", "evals"):
        assert body[key] == diffed[key], key
    assert [r["key"] for r in body["config"]] == ["training.learning_rate"]
    assert body["curves"] == {
        "a": recorded(root, a, "history.jsonl"),
        "b": recorded(root, b, "history.jsonl"),
    }
    prompts = {s["prompt"] for s in recorded(root, a, "samples.jsonl")}
    assert {s["prompt"] for s in body["samples"]} == prompts  # every paired answer, changed or not


def test_script_name_comes_back_verbatim_as_json(registry_runs):
    status, headers, body = get(registry_runs["server"], f"/api/runs/{registry_runs['b']}")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert body["run"]["name"] == SCRIPT_NAME


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/no-such-run",
        "/api/runs/..%2f..%2fetc%2fpasswd",
        "/api/runs/..%2F..%2Fetc%2Fpasswd/events",
        "/api/runs/%2e%2e",
        "/api/compare?a=..%2f..%2fetc%2fpasswd&b=best",
        "/api/compare?a=/etc/passwd&b=best",
        "/api/runs/no-such-run/events?after=0",
    ],
)
def test_unknown_and_traversal_references_are_404(registry_runs, path):
    status, headers, body = get(registry_runs["server"], path)
    assert status == 404 and headers["content-type"] == "application/json"
    assert "root:" not in json.dumps(body)


def test_no_registry_yet_lists_no_runs(ui_server):
    status, _, body = get(ui_server, "/api/runs")
    assert status == 200 and body["runs"] == [] and body["total"] == 0
    assert not (ui_server.registry / ".git").exists()  # reading never creates the registry
    status, _, _ = get(ui_server, "/api/runs/anything")
    assert status == 404
