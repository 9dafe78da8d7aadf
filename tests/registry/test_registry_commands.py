"""The registry commands end to end: runs, show, log, diff, tag/untag, checkout, rerun, registry push/pull."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git


def payload(result) -> dict:
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def test_runs_lists_newest_first_hides_failed(cli, add_run):
    a = add_run(loss=2.0)
    b = add_run(loss=1.0, status="failed")
    c = add_run(loss=1.5)
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    data = payload(result)
    assert [r["id"] for r in data["runs"]] == [c, a]
    assert data["runs"][0]["metrics"]["eval.loss"] == 1.5
    assert [r["id"] for r in payload(cli("runs", "--all", "--json"))["runs"]] == [c, b, a]
    assert [r["id"] for r in payload(cli("runs", "--status", "failed", "--json"))["runs"]] == [b]
    assert [r["id"] for r in payload(cli("runs", "--sort", "eval.loss", "--json"))["runs"]] == [c, a]
    assert [r["id"] for r in payload(cli("runs", "--limit", "1", "--json"))["runs"]] == [c]
    human = cli("runs")
    assert c in human.stdout and a in human.stdout and b not in human.stdout
    assert "1 failed, interrupted or lost run(s) hidden" in human.output


def test_runs_on_a_missing_registry_is_empty_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FTKIT_REGISTRY", str(tmp_path / "none"))
    from typer.testing import CliRunner

    from ftkit.cli.app import app

    result = CliRunner().invoke(app, ["runs", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["runs"] == []
    assert not (tmp_path / "none").exists()  # listing never creates a registry


def test_registry_option_overrides_env(cli, add_run, tmp_path):
    add_run()
    other = RunRegistry.open(tmp_path / "other")
    result = cli("runs", "--json", "--registry", str(other.root))
    assert payload(result)["runs"] == []


def test_show_includes_lineage(cli, add_run, registry):
    parent = add_run()
    child = add_run(parent=parent)
    grandchild = add_run(parent=child)
    registry.tag(child, "baseline")
    data = payload(cli("show", "baseline", "--json"))
    assert data["id"] == child
    assert data["lineage"]["parent"]["id"] == parent
    assert [c["id"] for c in data["lineage"]["children"]] == [grandchild]
    assert data["metrics"]["eval.loss"] == 2.0 and data["tags"] == ["baseline"]
    human = cli("show", child)
    assert human.exit_code == 0
    assert parent in human.stdout and grandchild in human.stdout and "Metrics" in human.stdout


def test_unknown_and_ambiguous_references_exit_2_with_candidates(cli, add_run):
    a = add_run()
    b = add_run()
    result = cli("show", "nothing-like-it")
    assert result.exit_code == 2 and "no run matches" in result.stderr
    common = os.path.commonprefix([a, b])
    result = cli("show", common)
    assert result.exit_code == 2 and "ambiguous" in result.stderr
    assert a in result.stderr and b in result.stderr
    result = cli("show", "../../etc/passwd")
    assert result.exit_code == 2 and "path characters" in result.stderr


def test_diff_tables_and_json(cli, add_run):
    a = add_run(loss=2.0, accuracy=0.5, lr=1e-4)
    b = add_run(loss=1.8, accuracy=0.45, lr=2e-4, env={"packages": {"torch": "2.5.0"}, "python": "3.11.0"})
    data = payload(cli("diff", a, b, "--json"))
    assert [r["key"] for r in data["config"]] == ["training.learning_rate"]  # output path and name ignored
    metrics = {r["metric"]: r for r in data["metrics"]}
    assert metrics["eval.loss"]["verdict"] == "better"
    assert metrics["eval.accuracy"]["verdict"] == "worse"
    assert round(metrics["eval.loss"]["delta_pct"], 6) == -10.0
    assert any("package torch: 2.4.0 → 2.5.0" in w for w in data["provenance"])
    assert data["a"]["id"] == a and data["b"]["id"] == b
    human = cli("diff", "@latest~1", "@latest")
    assert human.exit_code == 0
    for text in ("Config (changed keys)", "training.learning_rate", "Metrics", "Δ%", "provenance:"):
        assert text in human.stdout
    everything = payload(cli("diff", a, b, "--all", "--json"))
    assert "training.epochs" in {r["key"] for r in everything["config"]}


def test_diff_markdown(cli, add_run):
    a = add_run(loss=2.0)
    b = add_run(loss=2.5)
    result = cli("diff", a, b, "--md")
    assert result.exit_code == 0
    md = result.stdout
    assert md.startswith(f"### ftkit diff: `{a}`")
    assert "| `eval.loss` | 2 | 2.5 | +0.5 🔴 | +25.0% |" in md
    assert "[red]" not in md and "\x1b[" not in md


def test_diff_fail_on_gates(cli, add_run):
    a = add_run(loss=2.0, accuracy=0.8)
    b = add_run(loss=2.1, accuracy=0.79)
    ok = cli("diff", a, b, "--fail-on", "eval.loss>+0.2", "--fail-on", "eval.accuracy<-5%")
    assert ok.exit_code == 0, ok.output
    bad = cli("diff", a, b, "--fail-on", "eval.loss>+0.02", "--json")
    assert bad.exit_code == 1
    assert payload(bad)["gates"][0]["failed"] is True
    assert "gate(s) failed" in bad.stderr and "eval.loss" in bad.stderr
    relative = cli("diff", a, b, "--fail-on", "eval.loss>+2%")
    assert relative.exit_code == 1
    worse_acc = cli("diff", a, b, "--fail-on", "eval.accuracy<-0.005")
    assert worse_acc.exit_code == 1
    malformed = cli("diff", a, b, "--fail-on", "eval.loss>>1")
    assert malformed.exit_code == 2 and "invalid --fail-on" in malformed.stderr
    missing = cli("diff", a, b, "--fail-on", "eval.bleu>+1")
    assert missing.exit_code == 2 and "missing" in missing.stderr


def test_log_shows_what_changed(cli, add_run):
    add_run(loss=2.0, lr=1e-4)
    add_run(loss=1.5, lr=2e-4)
    add_run(loss=1.6, lr=2e-4)
    data = payload(cli("log", "--json"))
    newest, middle, oldest = data["runs"]
    assert oldest["changes"] == [] and oldest["compared_with"] is None
    assert [c["key"] for c in middle["changes"]] == ["training.learning_rate"]
    assert middle["metrics"][0]["metric"] == "eval.loss" and middle["metrics"][0]["delta"] == -0.5
    assert newest["changes"] == []
    # piped (not a terminal): tab-separated records; tests/cli checks the terminal form
    piped = cli("log").stdout.splitlines()
    assert f"change\t{middle['id']}\ttraining.learning_rate\t0.0001\t0.0002" in piped
    limited = payload(cli("log", "--limit", "1", "--json"))["runs"]
    assert len(limited) == 1 and limited[0]["compared_with"] == middle["id"]


def test_tag_and_untag(cli, add_run, registry):
    a = add_run()
    b = add_run()
    assert cli("tag", a, "production").exit_code == 0
    moved = payload(cli("tag", b, "production", "--json"))
    assert moved == {"tag": "production", "run": b, "previous": a}
    runs = payload(cli("runs", "--json"))["runs"]
    assert {r["id"]: r["tags"] for r in runs}[b] == ["production"]
    assert payload(cli("show", "production", "--json"))["id"] == b
    assert cli("untag", "production").exit_code == 0
    gone = cli("show", "production")
    assert gone.exit_code == 2
    bad = cli("tag", a, "no/slashes")
    assert bad.exit_code == 2 and "invalid tag" in bad.stderr
    assert cli("untag", "never-was").exit_code == 2


def test_checkout_writes_recipe_and_refuses_overwrite(cli, add_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_id = add_run(lr=3e-4)
    target = tmp_path / "again.yaml"
    result = cli("checkout", run_id, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "learning_rate: 0.0003" in target.read_text()
    again = cli("checkout", run_id, "-o", str(target))
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert cli("checkout", run_id, "-o", str(target), "--resolved", "--force").exit_code == 0
    resolved = yaml.safe_load(target.read_text())
    assert (
        resolved["training"]["learning_rate"] == 3e-4 and resolved["data"]["train"] == "/abs/data/train.jsonl"
    )
    default = cli("checkout", "@latest", "--json")
    written = Path(payload(default)["path"])
    assert written.exists() and written.suffix == ".yaml"
    printed = cli("checkout", run_id, "-o", "-")
    assert printed.stdout.startswith("model: tiny-llama")


def test_rerun_calls_run_and_record_with_parent(cli, add_run, monkeypatch):
    """Everything up to the run core: the rerun recipe, overrides and the parent handed to run_and_record."""
    import ftkit.cli.run as run_module

    run_id = add_run(lr=3e-4)
    seen = {}

    def fake_run_and_record(recipe_path, overrides, *, json_mode, dry_run, parent, registry_path, start=None):
        seen.update(
            recipe=yaml.safe_load(Path(recipe_path).read_text()),
            overrides=overrides,
            json_mode=json_mode,
            dry_run=dry_run,
            parent=parent,
        )
        return 0

    monkeypatch.setattr(run_module, "run_and_record", fake_run_and_record)
    result = cli("rerun", run_id, "--set", "training.learning_rate=1e-4", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert seen["parent"] == run_id and seen["dry_run"] and seen["json_mode"]
    assert seen["overrides"] == ["training.learning_rate=1e-4"]
    assert seen["recipe"]["training"]["learning_rate"] == 3e-4 and "name" not in seen["recipe"]
    assert cli("rerun", "no-such-run").exit_code == 2


def test_registry_push_pull_commands(cli, add_run, tmp_path):
    remote = tmp_path / "shared.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    run_id = add_run()
    assert cli("registry", "remote", "origin", str(remote)).exit_code == 0
    assert payload(cli("registry", "remote", "--json"))["remotes"]["origin"] == str(remote)
    pushed = cli("registry", "push", "--json")
    assert pushed.exit_code == 0, pushed.output
    other = tmp_path / "other"
    pulled = cli("registry", "pull", str(remote), "--registry", str(other), "--json")
    assert pulled.exit_code == 0, pulled.output
    assert payload(pulled)["new_runs"] == [run_id]
    assert run_id in git(other, "ls-tree", "--name-only", "main:runs")


def test_bad_registry_folder_exits_2_naming_it(tmp_path, monkeypatch):
    folder = tmp_path / "not-a-registry"
    folder.mkdir()
    (folder / "file.txt").write_text("x")
    from typer.testing import CliRunner

    from ftkit.cli.app import app

    for args in (["runs"], ["show", "@latest"], ["diff", "a", "b"], ["log"]):
        result = CliRunner().invoke(app, [*args, "--registry", str(folder)])
        assert result.exit_code == 2, (args, result.output)
        assert str(folder) in result.stderr


def test_python_m_ftkit_runs_json_subprocess(registry, add_run):
    run_id = add_run()
    env = {**os.environ, "FTKIT_REGISTRY": str(registry.root)}
    proc = subprocess.run(
        [sys.executable, "-m", "ftkit", "runs", "--json"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)["runs"]] == [run_id]


PROBE = """
import sys
from ftkit.cli.app import app
try:
    app(args={args!r}, prog_name="ftkit")
except SystemExit:
    pass
print("HEAVY=" + ",".join(m for m in ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
                           if m in sys.modules))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--help"],
        ["runs"],
        ["show", "@latest"],
        ["diff", "@latest~1", "@latest"],
        ["log"],
        ["tag", "--help"],
    ],
)
def test_registry_commands_do_not_import_torch(registry, add_run, args):
    add_run()
    add_run()
    env = {**os.environ, "FTKIT_REGISTRY": str(registry.root)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, env=env
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("HEAVY=")]
    assert line == ["HEAVY="], proc.stdout[-2000:] + proc.stderr[-2000:]
