"""`training.save_every` checkpoints: complete ones are named and marked, half-written ones never count and are
removed, rotation keeps the newest `keep_checkpoints`, the registry never stores them, and a disk that fills during
a checkpoint write leaves the previous checkpoint whole and the run recorded as failed with the reason."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.train import checkpoints
from tests.conftest import write_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _folder(root: Path, name: str, marked: bool) -> Path:
    path = root / "checkpoints" / name
    path.mkdir(parents=True)
    (path / "optimizer.pt").write_bytes(b"x")
    if marked:
        (path / checkpoints.MARKER).write_text("{}")
    return path


def test_only_named_and_marked_checkpoints_count(tmp_path):
    _folder(tmp_path, "checkpoint-4", True)
    _folder(tmp_path, "checkpoint-8", True)
    _folder(tmp_path, "checkpoint-12", False)  # renamed by something else, never marked
    _folder(
        tmp_path, ".ftkit-saving-checkpoint-16", True
    )  # marked but never renamed: the rename is the commit
    assert [c.step for c in checkpoints.complete_checkpoints(tmp_path)] == [4, 8]
    assert checkpoints.last_checkpoint(tmp_path).step == 8
    removed = checkpoints.remove_partial(tmp_path / "checkpoints")
    assert removed == [".ftkit-saving-checkpoint-16", "checkpoint-12"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-8"]
    assert checkpoints.rotate(tmp_path, keep=1) == [4]
    assert [c.step for c in checkpoints.complete_checkpoints(tmp_path)] == [8]
    assert checkpoints.rotate(tmp_path, keep=1) == []  # the last complete one is never deleted


def test_describe_contents_says_what_is_there(tmp_path):
    assert "does not exist" in checkpoints.describe_contents(tmp_path / "missing")
    assert "training.save_every" in checkpoints.describe_contents(tmp_path)
    _folder(tmp_path, ".ftkit-saving-checkpoint-4", False)
    assert checkpoints.describe_contents(tmp_path).endswith(
        "incomplete checkpoints: .ftkit-saving-checkpoint-4"
    )


def _run(tmp_path: Path, model: Path, data: dict, extra_training: str, output: Path | None = None):
    recipe = write_recipe(tmp_path / "recipe.yaml", model, data["train"], data["eval"])
    text = recipe.read_text().replace("  seed: 42\n", f"  seed: 42\n{extra_training}")
    if output is not None:
        text = text.replace(f"output: {tmp_path / 'outputs'}", f"output: {output}")
    recipe.write_text(text)
    result = CliRunner().invoke(app, ["run", str(recipe), "--json", "--registry", str(tmp_path / "reg")])
    from ftkit.registry.store import RunRegistry

    registry = RunRegistry.open(tmp_path / "reg", create=False)
    run_id = registry.summaries()[0]["id"]
    return result, registry.load_run(run_id)


def test_checkpoints_are_complete_rotated_and_kept_out_of_the_registry(tmp_path, tiny_model_dir, chat_data):
    result, loaded = _run(tmp_path, tiny_model_dir, chat_data, "  save_every: 4\n  keep_checkpoints: 2\n")
    assert result.exit_code == 0, result.output
    output = Path(loaded["run"]["output_dir"])
    found = checkpoints.complete_checkpoints(output)
    assert [c.step for c in found] == [8, 12]  # 4 was rotated out once 12 was complete
    assert sorted(p.name for p in (output / "checkpoints").iterdir() if p.is_dir()) == [
        "checkpoint-12",
        "checkpoint-8",
    ]
    losses = {row["step"]: row["loss"] for row in loaded["history"] if "loss" in row}
    for checkpoint in found:
        names = {p.name for p in checkpoint.path.iterdir()}
        assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= names
        state = json.loads((checkpoint.path / "trainer_state.json").read_text())
        assert state["global_step"] == checkpoint.step
        marker = checkpoint.marker()
        assert marker["step"] == checkpoint.step and set(marker["files"]) <= names
        # The loss sum kept for a resumed run's whole-run mean: the logged per-step losses, summed here.
        assert marker["loss_sum"] == pytest.approx(
            sum(v for s, v in losses.items() if s <= checkpoint.step), rel=1e-6
        )
    saved = {event["step"]: event for event in loaded["events"] if event.get("kind") == "checkpoint"}
    assert sorted(saved) == [4, 8, 12]
    for checkpoint in found:  # the size each event reports is what the folder holds on disk
        on_disk = sum(path.stat().st_size for path in checkpoint.path.rglob("*") if path.is_file())
        assert saved[checkpoint.step]["bytes"] == on_disk and saved[checkpoint.step]["seconds"] > 0
    names = [row["name"] for row in loaded["artifacts"]]
    assert "adapter_model.safetensors" in names
    assert not [name for name in names if name.startswith("checkpoints/")]


def test_no_save_every_writes_no_checkpoint(tmp_path, tiny_model_dir, chat_data):
    result, loaded = _run(tmp_path, tiny_model_dir, chat_data, "")
    assert result.exit_code == 0, result.output
    assert checkpoints.complete_checkpoints(loaded["run"]["output_dir"]) == []
    assert not [e for e in loaded["events"] if e.get("kind") == "checkpoint"]


@pytest.fixture
def small_disk(tmp_path):
    """A 320 KiB tmpfs: room for one of the tiny LoRA's checkpoints (about 190 KiB), not for two."""
    target = tmp_path / "small-disk"
    target.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("mount is unavailable, so no small disk can be made to fill")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(target)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs (needs root): {made.stderr.decode(errors='replace').strip()}"
        )
    yield target
    subprocess.run(["umount", str(target)], check=False)


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_records_the_failure(
    tmp_path, tiny_model_dir, chat_data, small_disk
):
    import torch

    extra = "  save_every: 4\n  keep_checkpoints: 5\n"
    result, loaded = _run(tmp_path, tiny_model_dir, chat_data, extra, output=small_disk)
    assert result.exit_code == 1, result.output
    run = loaded["run"]
    assert run["status"] == "failed"
    assert run["error"].startswith("OutputWriteError: disk full: cannot save checkpoint 8 in ")
    folder = Path(run["output_dir"]) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "checkpoint-4"
    ]  # no staging folder left
    (kept,) = checkpoints.complete_checkpoints(run["output_dir"])
    for name in kept.marker()["files"]:  # whole: every file the marker lists is there and reads back
        assert (kept.path / name).is_file(), name
    optimizer = torch.load(kept.path / "optimizer.pt", weights_only=True)
    assert optimizer["state"]  # Adam moments for the trained parameters
    assert json.loads((kept.path / "trainer_state.json").read_text())["global_step"] == 4
