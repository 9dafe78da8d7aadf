"""Where checkout and run may write: run names never escape the current folder, and nothing writes into a
registry's own git directory or weights store (real registries, real git; no training)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import chat_rows, write_jsonl
from tests.registry.conftest import git


def files_under(folder: Path) -> set[Path]:
    """Every file below `folder`, relative to it."""
    return {path.relative_to(folder) for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../escaped", "escaped.yaml"), ("/tmp/abs-name", "tmp-abs-name.yaml"), ("..", None)],
)
def test_checkout_without_o_writes_a_safe_file_in_the_current_folder(
    cli, add_run, registry, tmp_path, monkeypatch, name, expected
):
    run_id = add_run(name=name)
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = files_under(tmp_path) - {Path("a/b/work") / p for p in files_under(work)}
    outside_before = set(Path("/tmp").glob("abs-name*"))
    result = cli("checkout", run_id)
    assert result.exit_code == 0, result.output
    expected = expected or f"{run_id}.yaml"  # nothing usable left of the name: the run id
    assert files_under(work) == {Path(expected)}
    assert (work / expected).read_text().startswith("model: tiny-llama\n")
    written = {
        path for path in files_under(tmp_path) - before if path.parts[0] != "registry"
    }  # its own cache
    assert written == {Path("a/b/work") / expected}  # nothing written outside work/
    assert not (tmp_path / "a" / "escaped.yaml").exists()
    assert set(Path("/tmp").glob("abs-name*")) == outside_before
    assert expected in result.output.replace("\n", "")


def test_checkout_refuses_to_write_into_the_registry_git_dir(cli, add_run, registry):
    run_id = add_run()
    ref = registry.root / ".git" / "refs" / "heads" / "main"
    head = git(registry, "rev-parse", "refs/heads/main").strip()
    ref_text = ref.read_bytes() if ref.exists() else None
    result = cli("checkout", run_id, "-o", str(ref), "--force")
    assert result.exit_code == 2, result.output
    assert "-o" in result.output and ".git" in result.output
    assert (ref.read_bytes() if ref.exists() else None) == ref_text
    assert git(registry, "rev-parse", "refs/heads/main").strip() == head
    fsck = subprocess.run(
        ["git", "--git-dir", str(registry.root / ".git"), "fsck", "--strict"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_checkout_refuses_the_objects_store_through_dotdot(cli, add_run, registry, tmp_path):
    run_id = add_run()
    target = tmp_path / "elsewhere" / ".." / "registry" / "objects" / "x.yaml"
    result = cli("checkout", run_id, "-o", str(target))
    assert result.exit_code == 2, result.output
    assert not (registry.root / "objects" / "x.yaml").exists()


def test_run_refuses_an_output_inside_the_registry_naming_the_key(cli, registry, tmp_path):
    project = tmp_path / "project"
    write_jsonl(project / "data" / "train.jsonl", chat_rows(8))
    recipe = project / "recipe.yaml"
    recipe.write_text(
        f"model: tiny-llama\ndata:\n  train: data/train.jsonl\noutput: {registry.root / '.git' / 'out'}\n"
    )
    result = cli("run", str(recipe), "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"{recipe}:4: output:" in result.output.replace("\n", "")
    assert not (registry.root / ".git" / "out").exists()
    overridden = cli("run", str(recipe), "--dry-run", "--set", f"output={registry.root / 'objects'}")
    assert overridden.exit_code == 2, overridden.output
    assert "--set output" in overridden.output
