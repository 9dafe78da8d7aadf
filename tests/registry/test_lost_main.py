"""A lost or broken `refs/heads/main` never starts a new history over the old one: every command stops with exit 2
naming what happened and `ftkit registry repair`, which restores main from the newest recorded tip.

Registries are real (runs recorded through RunRegistry.commit_run); the damage is done with the file system and
git; expected figures come from git itself (`git ls-tree`, reflog files), not from the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.store import RunRegistry
from tests.registry.conftest import git, make_record


def payload(result) -> dict:
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def _main(registry) -> Path:
    return registry.root / ".git" / "refs" / "heads" / "main"


def _break_main(registry, how: str) -> str:
    """Damage main; returns the sha it held before."""
    sha = git(registry, "rev-parse", "main").strip()
    if how == "delete":
        _main(registry).unlink()
    elif how == "junk":
        _main(registry).write_text("this is not a sha\n")
    else:  # a commit that does not exist
        _main(registry).write_text("1234567890" * 4 + "\n")
    return sha


def _state(registry) -> tuple:
    """Everything a refused command must leave as it was."""
    git_dir = registry.root / ".git"
    main = _main(registry)
    return (
        main.read_bytes() if main.exists() else None,
        (git_dir / "logs" / "refs" / "heads" / "main").read_bytes(),
        sorted(p.name for p in (git_dir / "refs" / "heads").iterdir()),
    )


def _run_count(registry, sha: str) -> int:
    return len(git(registry, "ls-tree", "--name-only", f"{sha}:runs").split())


@pytest.fixture
def recorded(registry, add_run):
    return [add_run(loss=2.0), add_run(loss=1.5), add_run(loss=1.0)]


@pytest.mark.parametrize("how", ["delete", "junk", "missing-commit"])
def test_every_command_refuses_naming_the_repair_and_changes_nothing(cli, registry, recorded, how, tmp_path):
    _break_main(registry, how)
    before = _state(registry)
    for args in (("runs",), ("show", "@latest"), ("log",), ("tag", recorded[0], "prod"),
                 ("registry", "pull", str(tmp_path / "elsewhere")), ("diff", recorded[0], recorded[1])):  # fmt: skip
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        text = " ".join(result.stderr.split())
        assert "refs/heads/main" in text and "ftkit registry repair" in text, (args, text)
        assert "3 run(s)" in text and "ftkit run`" not in text and "not an ftkit registry" not in text
    assert _state(registry) == before
    with pytest.raises(Exception, match="refs/heads/main"):
        RunRegistry.open(registry.root).commit_run(make_record(registry))
    assert _state(registry) == before


def test_a_run_stops_before_training(registry, recorded, recipe_file, tmp_path):
    _break_main(registry, "delete")
    result = CliRunner().invoke(app, ["run", str(recipe_file), "--registry", str(registry.root)])
    assert result.exit_code == 2, result.output
    assert "ftkit registry repair" in " ".join(result.output.split())
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())
    assert not _main(registry).exists()


@pytest.mark.parametrize("how", ["delete", "junk", "missing-commit"])
def test_repair_restores_main_from_the_reflog(cli, registry, recorded, how):
    sha = _break_main(registry, how)
    result = cli("registry", "repair", "--json")
    assert result.exit_code == 0, result.output
    report = payload(result)
    assert report["restored"] == {"sha": sha, "source": "the reflog of refs/heads/main", "runs": 3}
    assert "refs/heads/main" in report["problem"] and report["runs"] == 3
    assert git(registry, "rev-parse", "main").strip() == sha
    assert {r["id"] for r in payload(cli("runs", "--json"))["runs"]} == set(recorded)
    # the next run continues the same history: one root commit, the old tip its parent
    fresh = RunRegistry.open(registry.root)
    fresh.commit_run(make_record(fresh))
    assert git(registry, "rev-list", "--max-parents=0", "main").split() == [
        git(registry, "rev-list", "--max-parents=0", sha).strip()
    ]
    assert git(registry, "rev-parse", "main^").strip() == sha
    fsck = cli("registry", "verify")
    assert fsck.exit_code == 0, fsck.output


def test_repair_uses_remote_refs_when_the_reflog_is_gone(cli, registry, recorded):
    sha = git(registry, "rev-parse", "main").strip()
    git(registry, "update-ref", "refs/remotes/origin/main", sha)
    _break_main(registry, "junk")
    for log in ("logs/refs/heads/main", "logs/HEAD"):
        (registry.root / ".git" / log).unlink()
    refused = cli("runs")
    assert refused.exit_code == 2 and "refs/remotes/origin/main" in refused.stderr
    report = payload(cli("registry", "repair", "--json"))
    assert report["restored"] == {"sha": sha, "source": "refs/remotes/origin/main", "runs": 3}
    assert report["moved_aside"] and Path(report["moved_aside"][0]).read_text() == "this is not a sha\n"


def test_repair_finds_the_commits_when_git_recorded_no_tip(cli, registry, recorded):
    sha = _break_main(registry, "delete")
    for log in ("logs/refs/heads/main", "logs/HEAD"):
        (registry.root / ".git" / log).unlink()
    report = payload(cli("registry", "repair", "--json"))
    assert report["restored"]["sha"] == sha and report["restored"]["source"] == "a commit object"
    assert report["runs"] == _run_count(registry, sha) == 3


def test_a_damaged_head_is_named_and_repaired(cli, registry, recorded):
    (registry.root / ".git" / "HEAD").write_text("garbage\n")
    refused = cli("runs")
    assert refused.exit_code == 2
    assert "HEAD" in refused.stderr and "ftkit registry repair" in refused.stderr
    assert "move this one away" not in refused.stderr
    report = payload(cli("registry", "repair", "--json"))
    assert "HEAD" in report["head"] and report["runs"] == 3
    assert (registry.root / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"


def test_a_truncated_pack_is_damage_and_a_remote_restores_it(cli, registry, recorded, tmp_path):
    remote = tmp_path / "shared.git"
    subprocess_git = ["git", "init", "--quiet", "--bare", str(remote)]
    import subprocess

    subprocess.run(subprocess_git, check=True)
    assert cli("registry", "push", str(remote)).exit_code == 0
    git(registry, "gc", "--quiet")
    [pack] = (registry.root / ".git" / "objects" / "pack").glob("*.pack")
    pack.chmod(0o644)
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    shutil.rmtree(registry.root / ".git" / "ftkit-cache", ignore_errors=True)

    refused = cli("runs")
    assert refused.exit_code == 2
    text = " ".join(refused.stderr.split())
    assert "cannot be read" in text and pack.name in text and "ftkit registry repair --from" in text
    assert "not an ftkit registry" not in text
    assert cli("registry", "verify").exit_code == 1
    nothing = cli("registry", "repair")
    assert nothing.exit_code == 2 and "no earlier state" in nothing.stderr

    repaired = cli("registry", "repair", "--from", str(remote), "--json")
    assert repaired.exit_code == 0, repaired.output
    report = payload(repaired)
    assert report["fetched"]["runs"] == 3 and report["runs"] == 3
    assert any(path.endswith(pack.name) for path in report["moved_aside"])
    assert cli("registry", "verify").exit_code == 0
    fsck = subprocess.run(["git", "--git-dir", str(registry.root / ".git"), "fsck", "--no-dangling"],
                          capture_output=True, text=True)  # fmt: skip
    assert fsck.returncode == 0, fsck.stderr


def test_a_garbage_ref_beside_a_sound_main_is_reported_by_verify_only(cli, registry, recorded):
    (registry.root / ".git" / "refs" / "heads" / "other").write_text("junk\n")
    git(registry, "update-ref", "refs/remotes/origin/main", git(registry, "rev-parse", "main").strip())
    (registry.root / ".git" / "refs" / "remotes" / "origin" / "main").write_text("1234567890" * 4 + "\n")
    assert cli("runs", "--json").exit_code == 0
    report = payload(cli("registry", "verify", "--json"))
    assert report["ok"] is False
    assert any("refs/heads/other" in line for line in report["fsck"])
    assert any("refs/remotes/origin/main" in line for line in report["fsck"])


def test_repair_of_a_sound_registry_changes_nothing(cli, registry, recorded):
    sha = git(registry, "rev-parse", "main").strip()
    report = payload(cli("registry", "repair", "--json"))
    assert report["problem"] is None and report["restored"] is None and report["runs"] == 3
    assert git(registry, "rev-parse", "main").strip() == sha
