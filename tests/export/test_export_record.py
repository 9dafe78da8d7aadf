"""`ftkit export` records each export in the registry (exports/<run-id>/<export-id>/export.json): the sha256 of every
written file as hashlib computes it, listed by `ftkit show`, nothing recorded for a refused export, kept by pull."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit import __version__
from ftkit.cli.app import app
from ftkit.registry import gitops
from ftkit.registry.exports import exports
from ftkit.registry.store import RunRegistry
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def lora(tmp_path_factory, tiny_model_dir, tmp_path):
    """The shared lora run's id and a private copy of its registry (records here never reach other tests)."""
    shared = generation_runs(tmp_path_factory, tiny_model_dir)
    registry = tmp_path / "registry"
    shutil.copytree(shared.registry, registry)
    # Other test files export the shared runs into the shared registry too: only this test's records count.
    _before[shared.lora["run_id"]] = {
        record["id"] for record in _all_records(registry, shared.lora["run_id"])
    }
    return shared.lora["run_id"], registry


_before: dict[str, set[str]] = {}  # run id -> ids of its export records in the shared registry when copied


def _all_records(registry: Path, run_id: str) -> list[dict]:
    with RunRegistry.open(registry, create=False) as reg:
        return exports(reg, run_id)


def _records(registry: Path, run_id: str) -> list[dict]:
    """The run's export records made since the fixture copied the registry, newest first."""
    earlier = _before.get(run_id, set())
    return [record for record in _all_records(registry, run_id) if record["id"] not in earlier]


def _tip(registry: Path) -> str:
    return subprocess.run(["git", "-C", str(registry), "rev-parse", "main"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def test_an_export_is_recorded_with_each_files_sha256_and_show_lists_it(lora, tmp_path):
    run_id, registry = lora
    reg = ["--registry", str(registry)]
    runs_before = _run("runs", "--json", *reg)
    # the copy may hold other test files' exports of the shared runs already
    exports_before = json.loads(_run("registry", "verify", "--json", *reg).stdout)["exports"]
    out = tmp_path / "exported"
    result = _run("export", run_id, "-o", str(out), "--adapter", "--dtype", "bf16", "--json", *reg)
    assert result.exit_code == 0, result.output
    [record] = _records(registry, run_id)
    assert record["id"] == json.loads(result.stdout)["export_id"]
    assert (record["run"], record["mode"], record["dtype"], record["method"]) == (
        run_id,
        "adapter",
        "bf16",
        "lora",
    )
    assert record["path"] == str(out.absolute()) and record["ftkit_version"] == __version__
    assert record["created_at"]
    on_disk = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    assert "adapter_model.safetensors" in on_disk and "README.md" in on_disk
    assert {f["name"]: (f["sha256"], f["size"]) for f in record["files"]} == {
        name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
        for name, path in on_disk.items()
    }
    stored = subprocess.run(["git", "-C", str(registry), "show", f"main:exports/{run_id}/{record['id']}/export.json"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert json.loads(stored)["files"] == record["files"]

    shown = _run("show", run_id, "--json", *reg)
    assert shown.exit_code == 0, shown.output
    listed = [e["id"] for e in json.loads(shown.stdout)["exports"] if e["id"] not in _before[run_id]]
    assert listed == [record["id"]]  # (other test files' exports of the shared run may precede the copy)
    text = _run("show", run_id, *reg)
    assert text.exit_code == 0 and "Exports" in text.output and record["id"] in text.output
    assert "adapter" in text.output and "bf16" in text.output
    assert _run("runs", "--json", *reg).stdout == runs_before.stdout  # `ftkit runs` unaffected
    verified = _run("registry", "verify", "--json", *reg)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["exports"] == exports_before + 1


def test_a_refused_export_records_nothing(lora, tmp_path):
    run_id, registry = lora
    tip = _tip(registry)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused = _run("export", run_id, "-o", str(busy), "--registry", str(registry))
    assert refused.exit_code == 2 and "not empty" in refused.output
    assert _records(registry, run_id) == [] and _tip(registry) == tip


def test_pull_keeps_both_sides_exports(lora, tmp_path):
    run_id, registry = lora
    remote, other = tmp_path / "shared.git", tmp_path / "other"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    assert _run("registry", "remote", "origin", str(remote), "--registry", str(registry)).exit_code == 0
    assert (
        _run("registry", "pull", str(remote), "--registry", str(other)).exit_code == 0
    )  # empty remote: no-op
    here = _run("export", run_id, "-o", str(tmp_path / "here"), "--adapter", "--registry", str(registry))
    assert here.exit_code == 0, here.output
    assert _run("registry", "push", "--registry", str(registry)).exit_code == 0
    first = _run("registry", "pull", str(remote), "--registry", str(other))
    assert first.exit_code == 0, first.output
    there = _run("export", run_id, "-o", str(tmp_path / "there"), "--adapter", "--registry", str(other))
    assert there.exit_code == 0, there.output
    again = _run("export", run_id, "-o", str(tmp_path / "again"), "--adapter", "--registry", str(registry))
    assert again.exit_code == 0, again.output
    assert _run("registry", "push", "--registry", str(registry)).exit_code == 0
    merged = _run("registry", "pull", str(remote), "--registry", str(other), "--json")
    assert merged.exit_code == 0, merged.output
    assert (
        json.loads(merged.stdout)["result"] == "merged"
    )  # both sides recorded: a true merge, not a fast-forward
    paths = sorted(Path(r["path"]).name for r in _records(other, run_id))
    assert paths == ["again", "here", "there"]


def test_a_record_that_fails_warns_and_the_export_stays_complete(lora, tmp_path):
    run_id, registry = lora
    reg = ["--registry", str(registry)]
    assert _run("export", run_id, "-o", str(tmp_path / "first"), "--adapter", *reg).exit_code == 0
    sha = subprocess.run(["git", "-C", str(registry), "rev-parse", "main:exports"], capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    (registry / ".git" / "objects" / sha[:2] / sha[2:]).unlink()  # the exports/ tree object is lost
    gitops._TREES.clear()  # as a new process finds it: this one still remembers the tree it wrote
    out = tmp_path / "second"
    result = _run("export", run_id, "-o", str(out), "--adapter", *reg)
    assert result.exit_code == 0, result.output
    assert (
        "the export itself is complete" in result.output
        and "recording it in the registry failed" in result.output
    )
    assert (out / "adapter_model.safetensors").is_file() and (out / "README.md").is_file()
    shown = _run("show", run_id, *reg)
    assert shown.exit_code == 0, shown.output
    assert "damaged" in shown.output and "exports" in shown.output
    verified = _run("registry", "verify", "--json", *reg)
    assert verified.exit_code != 0
    assert any(d["file"] == "exports" and d["object"] == sha for d in json.loads(verified.stdout)["damage"])
