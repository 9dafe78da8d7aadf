"""`ftkit registry verify`: fsck, every run readable, every artifact's sha256, every tag; exit 0 or 1 with a list.
`ftkit show` marks an artifact whose stored file is gone.

The expected figures (artifact count, bytes) come from hashing the output folders with hashlib in the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from ftkit.registry import gitops, records
from tests.registry.damage import break_run_file


def payload(result) -> dict:
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def _output(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "folder": folder.name}))
    return folder


@pytest.fixture
def two_trained_runs(tmp_path, add_run):
    weights = os.urandom(300_000)
    a = add_run(loss=2.0, output_dir=str(_output(tmp_path / "out-a", weights)))
    b = add_run(loss=1.0, output_dir=str(_output(tmp_path / "out-b", weights)))  # same weights: stored once
    files = [p for p in (tmp_path / "out-a").iterdir()] + [p for p in (tmp_path / "out-b").iterdir()]
    unique = {hashlib.sha256(p.read_bytes()).hexdigest(): p.stat().st_size for p in files}
    return a, b, hashlib.sha256(weights).hexdigest(), unique


def _stored(registry, sha: str) -> Path:
    path = registry.root / "objects" / "sha256" / sha[:2] / sha[2:]
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


def test_a_sound_registry_verifies(cli, registry, two_trained_runs):
    a, b, _, unique = two_trained_runs
    registry.tag(a, "baseline")
    result = cli("registry", "verify", "--json")
    assert result.exit_code == 0, result.output
    report = payload(result)
    assert report["ok"] is True and report["damage"] == [] and report["fsck"] == []
    assert (report["runs"], report["artifacts"], report["bytes"]) == (2, len(unique), sum(unique.values()))
    human = cli("registry", "verify")
    assert human.exit_code == 0
    assert f"registry OK: 2 runs, {len(unique)} artifacts" in human.stdout


def test_a_garbled_weight_file_is_reported_for_every_run_that_lists_it(cli, registry, two_trained_runs):
    a, b, weights_sha, _ = two_trained_runs
    path = _stored(registry, weights_sha)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # same size: only hashing finds it
    path.write_bytes(bytes(data))
    result = cli("registry", "verify", "--json")
    assert result.exit_code == 1, result.output
    damage = payload(result)["damage"]
    assert sorted(d["run"] for d in damage) == sorted([a, b])
    assert all("adapter_model.safetensors" in d["problem"] and "garbled" in d["problem"] for d in damage)
    assert all(d["object"] == weights_sha and "ftkit rerun" in d["fix"] for d in damage)
    human = cli("registry", "verify")
    assert human.exit_code == 1
    assert a in human.stdout and b in human.stdout and "garbled" in human.stdout and "fix:" in human.stdout


def test_missing_and_truncated_artifacts_are_reported_and_show_marks_them(cli, registry, two_trained_runs):
    a, b, weights_sha, _ = two_trained_runs
    _stored(registry, weights_sha).unlink()
    config_sha = next(
        row["sha256"] for row in registry.load_run(a)["artifacts"] if row["name"] == "adapter_config.json"
    )
    config = _stored(registry, config_sha)
    config.write_bytes(config.read_bytes()[:5])
    report = payload(cli("registry", "verify", "--json"))
    problems = {(d["run"], d["object"]): d["problem"] for d in report["damage"]}
    assert "missing" in problems[(a, weights_sha)] and "missing" in problems[(b, weights_sha)]
    assert "is 5 bytes, recorded as" in problems[(a, config_sha)]

    shown = cli("show", a, "--json")
    assert shown.exit_code == 0
    states = {row["name"]: row["stored"] for row in payload(shown)["artifacts"]}
    assert states == {"adapter_config.json": "size differs", "adapter_model.safetensors": "missing"}
    human = cli("show", a)
    assert "missing" in human.stdout and "registry verify" in human.stderr
    assert payload(cli("show", b, "--json"))["artifacts"][0]["stored"] in ("ok", "missing")


def test_a_damaged_run_file_and_fsck_are_reported(cli, registry, two_trained_runs):
    a, b, _, _ = two_trained_runs
    sha = break_run_file(registry.root, b, "resolved.yaml")  # unique to b (its output path)
    report = payload(cli("registry", "verify", "--json"))
    assert report["ok"] is False
    [run_item] = [d for d in report["damage"] if d["run"]]
    assert (run_item["run"], run_item["file"], run_item["object"]) == (b, "resolved.yaml", sha)
    assert "missing" in run_item["problem"] and "ftkit registry repair --from" in run_item["fix"]
    assert any(sha in line for line in report["fsck"])
    assert [d["file"] for d in report["damage"] if not d["run"]] == [".git"]


def test_tags_that_point_nowhere_or_cannot_be_read_are_reported(cli, registry, two_trained_runs):
    a, b, _, _ = two_trained_runs
    ghost = "20200101-000000-abcdef"
    for name, body in (("ghost", records.dumps({"run": ghost, "at": "x", "by": "y"})), ("broken", "{nope")):
        blob = gitops.Entry.blob(name, gitops.write_blob(registry.repo, body.encode()))
        registry.publish(
            lambda root, e=blob: gitops.with_child(registry.repo, root, "tags", e.name, e), "t", "t"
        )
    report = payload(cli("registry", "verify", "--json"))
    by_tag = {d["tag"]: d for d in report["damage"] if d["tag"]}
    assert set(by_tag) == {"ghost", "broken"}
    assert ghost in by_tag["ghost"]["problem"] and "ftkit untag ghost" in by_tag["ghost"]["fix"]
    assert "not a valid tag file" in by_tag["broken"]["problem"]


def test_big_stores_print_progress_on_stderr(cli, registry, two_trained_runs, monkeypatch):
    from ftkit.cli import registry_check

    monkeypatch.setattr(registry_check, "PROGRESS_FROM", 1)
    result = cli("registry", "verify", "--json")
    assert result.exit_code == 0
    assert "verifying artifacts: 0%" in result.stderr and "verifying artifacts: 100%" in result.stderr
    json.loads(result.stdout)  # stdout is still the one JSON document
