"""Evaluation records in the registry: one commit adding `evals/<run-id>/<eval-id>/`, read back newest first, refused
when malformed or of an unknown run, scrubbed, safe under concurrent writers, merged by pull, checked by verify, and
lined up by data fingerprint for `ftkit diff` and its gates. Records are built by hand (no model)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import subprocess

import pytest

from ftkit.errors import RegistryError, UsageError
from ftkit.registry import diff as diffing
from ftkit.registry.store import RunRegistry
from ftkit.registry.verify import verify
from tests.registry.conftest import git, make_record
from tests.registry.damage import break_object
from tests.registry.evalrecords import make_eval, write_data


def _objects(registry) -> set[str]:
    return {str(p) for p in (registry.root / "objects").rglob("*") if p.is_file()}


def test_commit_eval_adds_only_its_folder_and_round_trips(registry, add_run, tmp_path):
    run = add_run()
    record, files = make_eval(
        tmp_path,
        run,
        {"answer_match": 0.75, "json": {"valid": 1.0}},
        base_metrics={"answer_match": 0.25, "json": {"valid": 0.5}},
    )
    eval_id = registry.commit_eval(record, files)
    assert record.eval_id == eval_id
    changed = git(registry, "diff-tree", "-r", "--name-status", "main~1", "main").split("\n")
    assert sorted(line for line in changed if line) == [
        f"A\tevals/{run}/{eval_id}/artifacts.json",
        f"A\tevals/{run}/{eval_id}/eval.json",
    ]
    message = git(registry, "log", "-1", "--format=%B", "main")
    assert f"Ftkit-Eval: {eval_id}" in message and f"Ftkit-Eval-Of: {run}" in message
    assert "Ftkit-Run:" not in message  # that trailer dates runs (damage.commit_times)
    [loaded] = registry.evals(run)
    assert loaded["id"] == eval_id and loaded["run"] == run and loaded["model"] == f"run {run}"
    assert loaded["metrics"] == {"answer_match": 0.75, "json.valid": 1.0}  # stored flat
    assert loaded["base_metrics"] == {"answer_match": 0.25, "json.valid": 0.5}
    assert loaded["data"]["name"] == "test.jsonl" and loaded["data"]["rows"] == 3
    expected = hashlib.sha256((tmp_path / "data" / "test.jsonl").read_bytes()).hexdigest()
    assert loaded["data"]["sha256"] == expected
    prediction_bytes = files["predictions.jsonl"].read_bytes()
    [artifact] = loaded["artifacts"]
    assert artifact["name"] == "predictions.jsonl" and artifact["size"] == len(prediction_bytes)
    assert artifact["sha256"] == hashlib.sha256(prediction_bytes).hexdigest()
    assert (registry.root / artifact["path"]).read_bytes() == prediction_bytes
    assert registry.load_eval(eval_id) == loaded


def test_a_record_leaves_runs_and_the_summary_cache_alone(registry, add_run, tmp_path):
    run = add_run()
    RunRegistry.open(registry.root).list_runs()
    cache = registry.root / ".git" / "ftkit-cache" / "summaries.json"
    runs_tree, cached = git(registry, "rev-parse", "main:runs").strip(), cache.read_bytes()
    registry.commit_eval(*make_eval(tmp_path, run, {"answer_match": 0.5}))
    assert git(registry, "rev-parse", "main:runs").strip() == runs_tree
    assert [r["id"] for r in RunRegistry.open(registry.root).list_runs()] == [run]
    assert cache.read_bytes() == cached  # the listing was served from the cache, not rebuilt


def _bad_field(record, files, tmp_path, field):
    if field == "unknown run":
        record.run = "20200101-000000-abcdef"
    elif field == "run id with path characters":
        record.run = "../runs"
    elif field == "eval id":
        record.eval_id = "not-an-id"
    elif field == "data sha256":
        record.data = {**record.data, "sha256": "abc"}
    elif field == "data rows":
        record.data = {**record.data, "rows": "3"}
    elif field == "artifact name":
        files["../escape.jsonl"] = files.pop("predictions.jsonl")
    elif field == "artifact missing":
        files["predictions.jsonl"] = tmp_path / "nowhere.jsonl"


@pytest.mark.parametrize(
    "field",
    ["unknown run", "run id with path characters", "eval id", "data sha256", "data rows", "artifact name",
     "artifact missing"],
)  # fmt: skip
def test_a_refused_record_writes_nothing(registry, add_run, tmp_path, field):
    run = add_run()
    record, files = make_eval(tmp_path, run, {"answer_match": 0.5})
    _bad_field(record, files, tmp_path, field)
    head, stored = registry.head, _objects(registry)
    with pytest.raises(RegistryError) as caught:
        registry.commit_eval(record, files)
    assert caught.value.exit_code == 2
    assert RunRegistry.open(registry.root).head == head and _objects(registry) == stored
    if field == "unknown run":
        assert (
            "20200101-000000-abcdef" in caught.value.message and "not in the registry" in caught.value.message
        )


def test_same_eval_id_twice_is_refused(registry, add_run, tmp_path):
    run = add_run()
    record, files = make_eval(tmp_path, run, {"answer_match": 0.5})
    registry.commit_eval(record, files)
    again, files = make_eval(tmp_path, run, {"answer_match": 0.6}, eval_id=record.eval_id)
    with pytest.raises(RegistryError, match="already in the registry"):
        registry.commit_eval(again, files)


def test_records_are_listed_newest_first_by_run(registry, add_run, tmp_path):
    a, b = add_run(), add_run()
    first = registry.commit_eval(*make_eval(tmp_path, a, {"answer_match": 0.1}))
    other = registry.commit_eval(*make_eval(tmp_path, b, {"answer_match": 0.2}))
    second = registry.commit_eval(*make_eval(tmp_path, a, {"answer_match": 0.3}))
    plain = registry.commit_eval(
        *make_eval(tmp_path, None, {"answer_match": 0.4}, model="/models/base-model")
    )
    assert [r["id"] for r in registry.evals(a)] == [second, first]
    assert [r["id"] for r in registry.evals(b)] == [other]
    assert [r["id"] for r in registry.evals()] == [plain, second, other, first]
    model_record = registry.load_eval(plain)
    assert model_record["run"] is None and model_record["model"] == "/models/base-model"
    assert git(registry, "ls-tree", "--name-only", "main:evals/models").split() == [plain]


def test_load_eval_by_id_prefix_ambiguous_and_unknown(registry, add_run, tmp_path):
    run = add_run()
    first, files = make_eval(tmp_path, run, {"m": 1.0}, eval_id="20250101-120000-aaaaaa")
    registry.commit_eval(first, files)
    second, files = make_eval(tmp_path, run, {"m": 2.0}, eval_id="20250101-120000-abbbbb")
    registry.commit_eval(second, files)
    assert registry.load_eval("20250101-120000-ab")["metrics"] == {"m": 2.0}
    with pytest.raises(RegistryError, match="ambiguous") as caught:
        registry.load_eval("20250101-120000-a")
    assert len(caught.value.problems) == 2
    with pytest.raises(RegistryError, match="no eval record matches"):
        registry.load_eval("2030")


def test_secrets_never_reach_the_record(registry, add_run, tmp_path, monkeypatch):
    secret = "abcd-the-env-secret-1234"
    monkeypatch.setenv("JUDGE_API_KEY", secret)
    run = add_run()
    record, files = make_eval(
        tmp_path,
        run,
        {"answer_match": 0.5},
        base="https://alice:hunter2pw@models.example/base",
        settings={"judge": {"url": "https://judge.example/v1", "api_key": "plain-key-value"}, "note": secret},
    )
    files["judge.jsonl"] = tmp_path / "judge.jsonl"
    files["judge.jsonl"].write_text(
        json.dumps({"prompt": f"Authorization: {secret}", "verdict": "ok"}) + "\n"
    )
    eval_id = registry.commit_eval(record, files)
    text = git(registry, "show", f"main:evals/{run}/{eval_id}/eval.json")
    for leaked in (secret, "hunter2pw", "plain-key-value"):
        assert leaked not in text
    body = json.loads(text)
    assert body["settings"]["judge"]["api_key"] == "***redacted***"
    assert body["base"] == "https://alice:***@models.example/base"
    [judge] = [a for a in registry.load_eval(eval_id)["artifacts"] if a["name"] == "judge.jsonl"]
    stored = (registry.root / judge["path"]).read_text()
    assert secret not in stored and "***redacted***" in stored


def _commit_some(root: str, barrier, index: int, run: str, tmp: str, queue) -> None:
    from pathlib import Path

    try:
        reg = RunRegistry.open(root, create=False)
        if index % 2:
            record = make_record(reg)
            barrier.wait(timeout=30)
            reg.commit_run(record)
            queue.put(("run", record.run_id))
        else:
            record, files = make_eval(Path(tmp) / str(index), run, {"answer_match": index / 10})
            barrier.wait(timeout=30)
            queue.put(("eval", reg.commit_eval(record, files)))
        reg.close()
    except BaseException as error:  # report everything to the parent
        queue.put(("error", repr(error)))


def test_concurrent_records_and_runs_lose_nothing(registry, add_run, tmp_path):
    run = add_run()
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_commit_some, args=(str(registry.root), barrier, i, run, str(tmp_path), queue))
        for i in range(8)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert not [r for r in results if r[0] == "error"], results
    fresh = RunRegistry.open(registry.root)
    assert {r["id"] for r in fresh.evals(run)} == {r[1] for r in results if r[0] == "eval"}
    assert {r["id"] for r in fresh.list_runs()} == {run} | {r[1] for r in results if r[0] == "run"}
    assert git(registry, "rev-list", "--count", "main").strip() == "10"  # creation + 1 run + 8 commits


def test_a_garbled_record_is_reported_not_raised(registry, add_run, tmp_path):
    run = add_run()
    good = registry.commit_eval(*make_eval(tmp_path, run, {"answer_match": 0.5}))
    bad = registry.commit_eval(*make_eval(tmp_path, run, {"answer_match": 0.6}))
    sha = git(registry, "rev-parse", f"main:evals/{run}/{bad}/eval.json").strip()
    break_object(registry.root, sha, "tamper")
    fresh = RunRegistry.open(registry.root)
    # both were recorded within a second: the damaged one is placed by its id's time, so sort them here
    healthy, damaged = sorted(fresh.evals(run), key=lambda record: "damage" in record)
    assert healthy["id"] == good and "damage" not in healthy
    assert damaged["id"] == bad and damaged["run"] == run
    assert [d["file"] for d in damaged["damage"]] == [f"evals/{run}/{bad}/eval.json"]
    assert "not valid JSON" in damaged["damage"][0]["problem"]
    with pytest.raises(RegistryError, match=f"eval {bad} is damaged") as caught:
        fresh.load_eval(bad)
    assert caught.value.exit_code == 2
    assert [r["id"] for r in fresh.list_runs()] == [run]  # runs never read evals/
    report = verify(fresh)
    assert report["ok"] is False and report["evals"] == 2
    [item] = [d for d in report["damage"] if d["file"] != ".git"]  # git fsck also notices the bad object
    assert (item["run"], item["eval"], item["file"]) == (run, bad, f"evals/{run}/{bad}/eval.json")


def test_verify_hashes_record_artifacts(registry, add_run, tmp_path):
    run = add_run()
    eval_id = registry.commit_eval(*make_eval(tmp_path, run, {"answer_match": 0.5}))
    report = verify(registry)
    assert report["ok"] is True and report["evals"] == 1 and report["artifacts"] == 1
    [artifact] = registry.load_eval(eval_id)["artifacts"]
    path = registry.root / artifact["path"]
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(b"X" * artifact["size"])  # same size, other bytes: only hashing notices
    [item] = verify(registry)["damage"]
    assert item["eval"] == eval_id and item["file"] == f"evals/{run}/{eval_id}/artifacts.json"
    assert "does not hash to its sha256" in item["problem"] and "ftkit eval" in item["fix"]


def test_pull_merges_records_made_on_both_sides(tmp_path):
    remote = tmp_path / "shared.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    alice, bob = RunRegistry.open(tmp_path / "alice"), RunRegistry.open(tmp_path / "bob")
    record = make_record(alice)
    alice.commit_run(record)
    alice.set_remote("origin", str(remote))
    alice.push()
    bob.pull(str(remote))
    mine = alice.commit_eval(*make_eval(tmp_path / "a", record.run_id, {"answer_match": 0.5}))
    theirs = bob.commit_eval(*make_eval(tmp_path / "b", record.run_id, {"answer_match": 0.6}))
    alice.push()
    assert bob.push(str(remote))["result"] == "pushed"  # rejected, merged, pushed
    alice.pull("origin")
    for reg in (alice, bob):
        assert {r["id"] for r in reg.evals(record.run_id)} == {mine, theirs}
        assert verify(reg)["ok"] is True


# -- lining records up for `ftkit diff` (pure: hand-built records) -------------------------------------------------


def _rec(eval_id: str, sha: str, metrics: dict, name: str = "test.jsonl", **settings) -> dict:
    return {"id": eval_id, "data": {"name": name, "sha256": sha, "rows": 10}, "metrics": metrics,
            "settings": settings}  # fmt: skip


def test_lineup_compares_the_newest_record_on_the_same_data():
    older = _rec("20250101-000000-aaaaaa", "1" * 64, {"answer_match": 0.9})
    newer = _rec("20250102-000000-aaaaaa", "1" * 64, {"answer_match": 0.8})
    b = _rec("20250103-000000-bbbbbb", "1" * 64, {"answer_match": 0.7})
    lineup = diffing.eval_lineup([newer, older], [b])
    assert lineup["a"] == {"evals.test.answer_match": 0.8} and lineup["b"] == {"evals.test.answer_match": 0.7}
    [row] = lineup["metrics"]
    assert row["delta"] == pytest.approx(-0.1) and row["verdict"] == "worse"  # match: higher is better
    assert lineup["records"] == [{"key": "evals.test", "data": "test.jsonl", "sha256": "1" * 64,
                                  "a": newer["id"], "b": b["id"]}]  # fmt: skip
    assert lineup["provenance"] == []


def test_lineup_disambiguates_a_shared_stem_and_notes_differences():
    a = [
        _rec("a1", "1" * 64, {"m": 1}),
        _rec("a2", "2" * 64, {"m": 2}, name="sub/test.jsonl"),
        _rec("a3", "3" * 64, {"m": 3}, name="gsm8k.dev.jsonl"),
        _rec("a4", "5" * 64, {"m": 4}, max_rows=5, judge="local"),
    ]
    b = [_rec("b1", "1" * 64, {"m": 10}), _rec("b2", "2" * 64, {"m": 20}, name="sub/test.jsonl"),
         _rec("b3", "4" * 64, {"m": 30}, name="gsm8k.dev.jsonl"), _rec("b4", "5" * 64, {"m": 40}, max_rows=9),
         {"id": "b5", "run": "r", "damage": [{"file": "evals/r/b5/eval.json"}]}]  # fmt: skip
    lineup = diffing.eval_lineup(a, b)
    assert lineup["a"] == {"evals.test:11111111.m": 1, "evals.test:22222222.m": 2, "evals.test:55555555.m": 4}
    assert lineup["b"] == {
        "evals.test:11111111.m": 10,
        "evals.test:22222222.m": 20,
        "evals.test:55555555.m": 40,
    }
    assert lineup["provenance"] == [
        "evals.test:55555555: evaluation settings differ: judge local → absent; max_rows 5 → 9",
        "eval data gsm8k.dev.jsonl: fingerprint differs (333333333333 in A → 444444444444 in B); its metrics are "
        "not compared",
        "eval b5 of B is damaged and left out (`ftkit registry verify` lists it)",
    ]
    assert diffing.eval_label({"data": {"path": "/x/gsm8k.dev.jsonl"}}) == "gsm8k_dev"


def test_the_data_stem_does_not_decide_a_metric_direction():
    assert diffing.direction("evals.match_cases.loss") == -1  # "match" in the file name, loss is the metric
    assert diffing.direction("evals.loss_probe.answer_match") == 1
    assert diffing.direction("evals.test:1a2b3c4d.json_field.city") == 1


def test_an_eval_gate_trips_and_a_missing_one_says_how_to_record_it():
    lineup = diffing.eval_lineup(
        [_rec("a", "1" * 64, {"answer_match": 0.8})], [_rec("b", "1" * 64, {"answer_match": 0.7})]
    )
    result = diffing.parse_gate("evals.test.answer_match<-0.05").check(lineup["a"], lineup["b"])
    assert result["failed"] is True and result["delta"] == pytest.approx(-0.1)
    assert (
        diffing.parse_gate("evals.test.answer_match<-0.2").check(lineup["a"], lineup["b"])["failed"] is False
    )
    with pytest.raises(UsageError, match="missing from run A") as caught:
        diffing.parse_gate("evals.dev.answer_match<-0.05").check(lineup["a"], lineup["b"])
    assert "ftkit eval" in caught.value.hint


def test_data_fingerprint_matches_hashlib(tmp_path):
    from ftkit.registry.evals import data_fingerprint

    data = write_data(tmp_path / "eval.jsonl", rows=4)
    assert data_fingerprint(tmp_path / "eval.jsonl", rows=4, format="prompt-completion") == {
        **data,
        "name": "eval.jsonl",
    }
