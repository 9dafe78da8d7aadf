"""A full output disk: the save fails with a located "disk full" message, the run is recorded as failed with every
metric it had, and no partial file of the failed save is stored as an artifact. Real small tmpfs mounts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.registry.artifacts import ArtifactStore
from ftkit.train import output_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mount_tmpfs(target: Path, size: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("mount is unavailable, so no small disk can be made to fill")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs (needs root): {proc.stderr.decode(errors='replace').strip()}"
        )
    return target


@pytest.fixture
def small_disk(tmp_path):
    """A 32 KiB tmpfs: room for a folder and a few small files, not for the tiny model's save (about 60 KiB)."""
    yield _mount_tmpfs(tmp_path / "small-disk", "32k")
    subprocess.run(["umount", str(tmp_path / "small-disk")], check=False)


def test_a_save_that_fills_the_disk_leaves_no_partial_file(small_disk):
    folder = small_disk / "run"
    (folder / "checkpoints").mkdir(parents=True)
    with (
        pytest.raises(output_files.OutputWriteError) as caught,
        output_files.staged(folder, "the trained model") as staging,
    ):
        (staging / "adapter_config.json").write_text("{}")  # complete
        (staging / "adapter_model.safetensors").write_bytes(b"\0" * 200_000)  # fills the disk
    message = str(caught.value)
    assert message.startswith("disk full: cannot save the trained model in ")
    assert str(folder) in message
    # Neither the complete file of the failed save nor the partial one is left; what was there stays.
    assert sorted(p.name for p in folder.rglob("*")) == ["checkpoints"]


def test_a_save_that_succeeds_moves_every_file_into_place(tmp_path):
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "kept.txt").write_text("kept")
    with output_files.staged(folder, "the trained model") as staging:
        (staging / "a.json").write_text("{}")
        (staging / "sub").mkdir()
        (staging / "sub" / "b.txt").write_text("b")
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert found == ["a.json", "sub/b.txt", "sub/kept.txt"]


def test_a_staging_folder_left_behind_is_never_stored(tmp_path):
    output = tmp_path / "run"
    (output / ".ftkit-saving-x1").mkdir(parents=True)
    (output / ".ftkit-saving-x1" / "adapter_config.json").write_bytes(b"")
    (output / "metrics.json").write_text("{}")
    rows = ArtifactStore(tmp_path / "objects").put_tree(output)
    assert [row["name"] for row in rows] == ["metrics.json"]
    assert output_files.STAGING_PREFIX == ".ftkit-saving-"  # the prefix artifacts.py skips


def test_run_on_a_full_output_disk_is_recorded_failed_without_partial_artifacts(
    tmp_path, recipe_file, small_disk
):
    registry = tmp_path / "registry"
    runner = CliRunner()
    result = runner.invoke(
        app, ["run", str(recipe_file), "--set", f"output={small_disk}", "--registry", str(registry)]
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "disk full: cannot save the trained model in " in text
    run_folders = [p for p in small_disk.iterdir() if p.is_dir()]
    assert len(run_folders) == 1 and str(run_folders[0]) in text
    # The output holds no file of the failed save (and no staging folder); only the run's live event log.
    assert [p.name for p in run_folders[0].rglob("*") if p.is_file()] == ["events.jsonl"]
    assert not any(p.name.startswith(output_files.STAGING_PREFIX) for p in run_folders[0].iterdir())

    shown = runner.invoke(app, ["show", "@latest", "--json", "--registry", str(registry)])
    assert shown.exit_code == 0, shown.output
    run = json.loads(shown.stdout)
    assert run["run"]["status"] == "failed"
    assert "disk full" in run["run"]["error"]
    assert [artifact["name"] for artifact in run["artifacts"]] == ["events.jsonl"]  # the log, no weights
    # Nothing else lost: the training that happened before the save is recorded.
    assert run["metrics"]["train.steps"] == 12
    assert run["metrics"]["train.loss_last"] < run["metrics"]["train.loss_first"]
    assert len(run["history"]) >= 1
    assert len([p for p in (registry / "objects").rglob("*") if p.is_file()]) == 1  # the event log only
