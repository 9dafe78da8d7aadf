"""RunRegistry: layout, commits through plumbing, artifacts, limits, bad input, secrets, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from ftkit.errors import RegistryError
from ftkit.registry.records import MAX_FILE_BYTES, RUN_FILES, RunRecord
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record


def test_open_creates_registry_with_format_file(tmp_path):
    reg = RunRegistry.open(tmp_path / "reg")
    assert (tmp_path / "reg" / ".git").is_dir()
    assert json.loads(git(reg, "show", "main:registry.json")) == {"format": 1}
    assert git(reg, "rev-list", "--count", "main").strip() == "1"
    assert "/objects/" in (tmp_path / "reg" / ".git" / "info" / "exclude").read_text()


def test_open_defaults_to_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FTKIT_REGISTRY", raising=False)
    assert RunRegistry.open().root == tmp_path / ".ftkit" / "registry"
    monkeypatch.setenv("FTKIT_REGISTRY", str(tmp_path / "elsewhere"))
    assert RunRegistry.open().root == tmp_path / "elsewhere"


def test_open_without_create_refuses_missing(tmp_path):
    with pytest.raises(RegistryError, match="no registry"):
        RunRegistry.open(tmp_path / "missing", create=False)


def test_commit_run_writes_one_commit_adding_only_its_folder(registry, add_run):
    run_id = add_run(loss=1.5)
    files = git(registry, "show", "--name-only", "--format=", "main").split()
    assert sorted(files) == sorted(f"runs/{run_id}/{name}" for name in RUN_FILES)
    message = git(registry, "log", "-1", "--format=%B", "main")
    assert run_id in message and "lora on tiny-llama" in message and "eval.loss=1.5" in message
    assert f"Ftkit-Run: {run_id}" in message
    assert git(registry, "rev-list", "--count", "main").strip() == "2"
    fsck = subprocess.run(
        ["git", "--git-dir", str(registry.root / ".git"), "fsck", "--strict"], capture_output=True
    )
    assert fsck.returncode == 0, fsck.stderr


def test_load_run_round_trips_every_file(registry, add_run):
    run_id = add_run(loss=1.25, lr=3e-4)
    loaded = registry.load_run(run_id)
    assert loaded["run"]["id"] == run_id
    assert loaded["run"]["status"] == "succeeded"
    assert loaded["run"]["duration_s"] == 42.0
    assert loaded["metrics"] == {"eval.loss": 1.25, "eval.accuracy": 0.5, "train.tokens_per_sec": 1000.0}
    assert loaded["resolved"]["training"]["learning_rate"] == 3e-4
    assert loaded["resolved"]["method"] == {"name": "lora", "r": 8}
    assert loaded["recipe"].startswith("model: tiny-llama")
    assert [row["step"] for row in loaded["history"]] == [1, 2]
    assert loaded["events"][0] == {"type": "start"}
    assert loaded["env"]["seed"] == 42
    assert loaded["data"]["train"]["rows"] == 100
    assert loaded["artifacts"] == []


def test_resolved_yaml_is_real_yaml(registry, add_run):
    yaml = pytest.importorskip("yaml")
    run_id = add_run(lr=1e-5)
    text = git(registry, "show", f"main:runs/{run_id}/resolved.yaml")
    assert yaml.safe_load(text) == registry.load_run(run_id)["resolved"]


def test_artifacts_go_to_content_addressed_store_deduplicated(registry, add_run, tmp_path):
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    for out in (out1, out2):
        (out / "adapter").mkdir(parents=True)
        (out / "adapter" / "weights.bin").write_bytes(b"\x00" * 4096)
    (out2 / "extra.txt").write_text("only in run 2")
    first = add_run(output_dir=str(out1))
    second = add_run(output_dir=str(out2))
    rows1 = registry.load_run(first)["artifacts"]
    rows2 = registry.load_run(second)["artifacts"]
    assert [r["name"] for r in rows1] == ["adapter/weights.bin"]
    assert [r["name"] for r in rows2] == ["adapter/weights.bin", "extra.txt"]
    weights = rows1[0]
    assert weights["size"] == 4096 and weights == rows2[0]
    stored = registry.root / weights["path"]
    assert stored == registry.artifact_path(weights["sha256"])
    assert stored.read_bytes() == b"\x00" * 4096
    assert weights["path"] == f"objects/sha256/{weights['sha256'][:2]}/{weights['sha256'][2:]}"
    assert len([p for p in (registry.root / "objects").rglob("*") if p.is_file()]) == 2  # de-duplicated
    assert registry.store.verify(weights["sha256"])
    tracked = git(registry, "ls-tree", "-r", "--name-only", "main")
    assert "weights.bin" not in tracked  # weights never enter git
    assert (out1 / "adapter" / "weights.bin").exists()  # the output folder still works


def test_failed_and_interrupted_runs_are_committed(registry, add_run):
    failed = add_run(status="failed", error="CUDA out of memory", metrics={})
    interrupted = add_run(status="interrupted")
    assert registry.load_run(failed)["run"]["error"] == "CUDA out of memory"
    assert registry.load_run(interrupted)["run"]["status"] == "interrupted"


def test_oversized_registry_file_is_refused(registry):
    record = make_record(registry, recipe_text="# " + "x" * (1 << 20))
    with pytest.raises(RegistryError, match=r"recipe.yaml is 1.0 MiB"):
        registry.commit_run(record)
    assert git(registry, "rev-list", "--count", "main").strip() == "1"


def test_long_history_is_thinned_not_refused(registry):
    history = [{"step": i, "loss": 1.0 / (i + 1), "lr": 1e-4, "note": "x" * 40} for i in range(20000)]
    record = make_record(registry, history=history)
    registry.commit_run(record)
    loaded = registry.load_run(record.run_id)
    assert loaded["run"]["thinned"]["history_every"] > 1
    steps = [row["step"] for row in loaded["history"]]
    assert steps[0] == 0 and steps[-1] == 19999
    size = len(git(registry, "show", f"main:runs/{record.run_id}/history.jsonl").encode())
    assert size <= MAX_FILE_BYTES


@pytest.mark.parametrize(
    "bad", ["../evil", "runs/x", "a\\b", "20250101-000000-abc", "", "20250101-000000-ABCDEF"]
)
def test_run_id_with_path_characters_or_bad_shape_is_rejected(registry, bad):
    with pytest.raises(RegistryError, match="invalid run id"):
        registry.commit_run(
            make_record(registry, run_id=bad or None, name="x") if bad else RunRecord("", "succeeded")
        )


def test_bad_status_and_parent_are_rejected(registry):
    with pytest.raises(RegistryError, match="invalid run status"):
        registry.commit_run(make_record(registry, status="done"))
    with pytest.raises(RegistryError, match="invalid run id"):
        registry.commit_run(make_record(registry, parent="../x"))


def test_same_run_id_twice_is_refused(registry, add_run):
    run_id = add_run()
    with pytest.raises(RegistryError, match="already in the registry"):
        add_run(run_id=run_id)


def test_newer_format_is_refused_clearly(registry):
    blob = (
        subprocess.run(
            ["git", "--git-dir", str(registry.root / ".git"), "hash-object", "-w", "--stdin"],
            input=b'{"format": 99}\n',
            capture_output=True,
        )
        .stdout.decode()
        .strip()
    )
    tree_text = git(registry, "ls-tree", "main").replace(
        git(registry, "rev-parse", "main:registry.json").strip(), blob
    )
    tree = (
        subprocess.run(
            ["git", "--git-dir", str(registry.root / ".git"), "mktree"],
            input=tree_text.encode(),
            capture_output=True,
        )
        .stdout.decode()
        .strip()
    )
    commit = git(registry, "commit-tree", tree, "-p", "main", "-m", "future").strip()
    git(registry, "update-ref", "refs/heads/main", commit)
    before = git(registry, "rev-parse", "main")
    with pytest.raises(RegistryError, match=r"newer ftkit \(registry format 99; this ftkit reads up to 1\)"):
        RunRegistry.open(registry.root)
    assert git(registry, "rev-parse", "main") == before  # never silently damaged


def test_foreign_folder_is_refused(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("hi")
    with pytest.raises(RegistryError, match=f"{folder} is not an ftkit registry"):
        RunRegistry.open(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["todo.txt"]


def test_foreign_git_repository_is_refused(tmp_path):
    repo = tmp_path / "project"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("a")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "x"], check=True, env=env)
    with pytest.raises(RegistryError, match="not an ftkit registry"):
        RunRegistry.open(repo)


def test_corrupt_git_directory_is_refused(tmp_path):
    folder = tmp_path / "broken"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "junk").write_text("x")
    with pytest.raises(RegistryError, match="corrupt or foreign"):
        RunRegistry.open(folder)


def test_registry_path_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(RegistryError, match="is a file"):
        RunRegistry.open(path)


SECRET_ENV = "hf_PlantedEnvSecret1234567890"
SECRET_RECIPE = "sk-proj-PlantedRecipeKey0987654321abcdef"
SECRET_NAMED = "correct-horse-battery-staple"


def test_secrets_never_reach_the_registry(registry, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET_ENV)
    monkeypatch.setenv("MY_SERVICE_PASSWORD", SECRET_NAMED + "-env")
    recipe = (
        "model: tiny-llama\n"
        f"hub_token: {SECRET_RECIPE}\n"
        f"password: '{SECRET_NAMED}'\n"
        "tokenizer: gpt2\n"
        "special:\n  pad_token: <pad>\n"
        f"comment: uses {SECRET_ENV} inline  # {SECRET_NAMED}-env\n"
    )
    record = make_record(
        registry,
        recipe_text=recipe,
        resolved={
            "model": "tiny-llama",
            "hub": {"api_key": SECRET_NAMED, "token": SECRET_ENV},
            "pad_token": "<pad>",
        },
        env={"note": f"Bearer {SECRET_NAMED}xxxxxxxxxxxx", "nested": [{"aws": "AKIAABCDEFGHIJKLMNOP"}]},
        events=[{"type": "log", "message": f"logged in with {SECRET_ENV}"}],
        error=f"auth failed for {SECRET_RECIPE}",
        status="failed",
    )
    registry.commit_run(record)
    dump = subprocess.run(
        [
            "git",
            "--git-dir",
            str(registry.root / ".git"),
            "grep",
            "-I",
            "-e",
            "Planted",
            "-e",
            SECRET_NAMED,
            "-e",
            "AKIAABCD",
            "main",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert dump.stdout == "", dump.stdout
    raw = subprocess.run(
        ["grep", "-r", "-a", "-l", "Planted", str(registry.root)], capture_output=True, text=True
    )
    assert raw.stdout == ""  # not even in loose objects or the cache (they are compressed, but check anyway)
    loaded = registry.load_run(record.run_id)
    assert 'hub_token: "***redacted***"' in loaded["recipe"]
    assert 'password: "***redacted***"' in loaded["recipe"]
    parsed = pytest.importorskip("yaml").safe_load(
        loaded["recipe"]
    )  # still valid YAML (a bare * is an alias)
    assert parsed["hub_token"] == "***redacted***" and parsed["comment"] == "uses ***redacted*** inline"
    assert "tokenizer: gpt2" in loaded["recipe"] and "pad_token: <pad>" in loaded["recipe"]
    assert loaded["resolved"]["hub"] == {"api_key": "***redacted***", "token": "***redacted***"}
    assert loaded["resolved"]["pad_token"] == "<pad>"
    assert "***redacted***" in loaded["run"]["error"]


def _commit_one(root: str, barrier, index: int, queue) -> None:
    try:
        reg = RunRegistry.open(root, create=False)
        record = make_record(reg, loss=1.0 + index / 100)
        barrier.wait(timeout=30)
        queue.put(("ok", reg.commit_run(record), record.run_id))
        reg.close()
    except BaseException as error:  # report everything to the parent
        queue.put(("error", repr(error), None))


def test_sixteen_concurrent_processes_make_sixteen_commits(registry):
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(16), ctx.Queue()
    procs = [ctx.Process(target=_commit_one, args=(str(registry.root), barrier, i, queue)) for i in range(16)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    errors = [r for r in results if r[0] != "ok"]
    assert not errors, errors
    run_ids = {r[2] for r in results}
    assert len(run_ids) == 16
    assert git(registry, "rev-list", "--count", "main").strip() == "17"  # 16 runs + the creation commit
    listed = set(git(registry, "ls-tree", "--name-only", "main:runs").split())
    assert listed == run_ids
    history = git(registry, "rev-list", "--first-parent", "main").split()
    assert {r[1] for r in results} <= set(history)  # every published commit is on the branch
    fsck = subprocess.run(
        ["git", "--git-dir", str(registry.root / ".git"), "fsck", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0 and fsck.stdout == "" and "error" not in fsck.stderr, (
        fsck.stdout + fsck.stderr
    )
    fresh = RunRegistry.open(registry.root)
    assert {s["id"] for s in fresh.list_runs()} == run_ids


def test_summary_cache_is_used_and_never_stale(registry, add_run):
    first = add_run(loss=1.0)
    assert [s["id"] for s in RunRegistry.open(registry.root).list_runs()] == [first]
    cache = registry.root / ".git" / "ftkit-cache" / "summaries.json"
    assert first in json.loads(cache.read_text())["runs"]
    assert json.loads(cache.read_text())["runs_tree"] == git(registry, "rev-parse", "main:runs").strip()
    second = add_run(loss=0.9)
    listed = RunRegistry.open(registry.root).list_runs()
    assert [s["id"] for s in listed] == [second, first]
    cache.write_text("not json")  # a damaged cache is rebuilt, not trusted
    assert len(RunRegistry.open(registry.root).list_runs()) == 2


def test_list_runs_filters_and_sorts(registry, add_run):
    a = add_run(loss=2.0, accuracy=0.6)
    b = add_run(loss=1.0, accuracy=0.9, method="dora")
    c = add_run(loss=1.5, status="failed")
    d = add_run(loss=3.0, model="other/model")
    assert [r["id"] for r in registry.list_runs()] == [d, b, a]  # newest first, failed hidden
    assert [r["id"] for r in registry.list_runs(include_all=True)] == [d, c, b, a]
    assert [r["id"] for r in registry.list_runs(status="failed")] == [c]
    assert [r["id"] for r in registry.list_runs(method="dora")] == [b]
    assert [r["id"] for r in registry.list_runs(model="other")] == [d]
    assert [r["id"] for r in registry.list_runs(sort="eval.loss")] == [b, a, d]  # lower is better
    assert [r["id"] for r in registry.list_runs(sort="eval.accuracy")] == [b, a, d]  # higher is better
    assert [r["id"] for r in registry.list_runs(limit=2)] == [d, b]
    registry.tag(a, "baseline")
    assert [r["id"] for r in registry.list_runs(tag="baseline")] == [a]


def test_new_run_name_avoids_taken_names(registry, add_run):
    names = set()
    for _ in range(12):
        run_id = add_run()
        names.add(registry.load_run(run_id)["run"]["name"])
    assert len(names) == 12
    assert all("-" in name for name in names)


def test_tags_move_and_untag(registry, add_run):
    a, b = add_run(), add_run()
    assert registry.tag(a, "production") == {"tag": "production", "run": a, "previous": None}
    assert registry.resolve("production") == a
    assert registry.tag(b, "production")["previous"] == a
    assert registry.resolve("production") == b
    assert registry.load_run(b)["tags"] == ["production"]
    registry.untag("production")
    assert registry.tags() == {}
    with pytest.raises(RegistryError, match="no tag named"):
        registry.untag("production")


def test_lineage_children(registry, add_run):
    parent = add_run()
    child = add_run(parent=parent)
    assert registry.load_run(parent)["children"] == [child]
    assert registry.load_run(child)["run"]["parent"] == parent


def test_record_path_characters_in_name_do_not_matter_for_layout(registry):
    record = make_record(registry, name="../../weird name")
    registry.commit_run(record)
    assert registry.load_run(record.run_id)["run"]["name"] == "../../weird name"
    assert git(registry, "ls-tree", "--name-only", "main:runs").split() == [record.run_id]


def test_resolve_is_validated_before_touching_files(registry, add_run):
    add_run()
    with pytest.raises(RegistryError, match="path characters"):
        registry.resolve("../../etc/passwd")
    with pytest.raises(RegistryError, match="invalid run id"):
        registry.load_run("../../etc")


def test_registry_root_is_absolute_even_if_given_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reg = RunRegistry.open(Path("rel/reg"))
    assert reg.root.is_absolute() and reg.root == tmp_path / "rel" / "reg"


def test_a_long_lived_registry_lists_runs_recorded_by_others_in_between(registry, add_run):
    first = add_run()
    assert [r["id"] for r in registry.list_runs()] == [first]  # summaries now held in memory
    other = RunRegistry.open(registry.root)
    theirs = make_record(other, name="their-run")
    other.commit_run(theirs)
    other.close()
    mine = add_run()  # published on top of their commit
    assert [r["id"] for r in registry.list_runs()] == [mine, theirs.run_id, first]
    assert registry.resolve("their-run") == theirs.run_id
