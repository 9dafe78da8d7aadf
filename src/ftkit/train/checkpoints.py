"""Resumable checkpoints (`training.save_every`), written so that a half-written one is never taken for a whole one.

transformers' Trainer writes `checkpoint-N/` (weights, optimizer, scheduler, RNG and trainer state, which holds the
data position) straight into place, file after file: a `kill -9` or a full disk half-way leaves a folder that looks
like a checkpoint. Here the Trainer writes into a staging folder (`.ftkit-saving-checkpoint-N/`, a name the registry
never stores), every file is fsynced, a marker (`ftkit-checkpoint.json`: step, the run's loss sum so far) is written
and fsynced last, and only then is the folder renamed to `checkpoints/checkpoint-N` — one atomic rename on the same
disk. A checkpoint is complete when its folder has that name and holds the marker; anything else is removed at the
next start and never resumed from. Rotation keeps the newest `keep_checkpoints` complete ones and runs only after the
new one is complete, so the last complete checkpoint is never deleted before its successor exists.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.train.output_files import STAGING_PREFIX, is_write_error, located

CHECKPOINTS = "checkpoints"  # under the run's output folder (the Trainer's output_dir)
MARKER = "ftkit-checkpoint.json"
STAGING = f"{STAGING_PREFIX}checkpoint-"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_TORCH_WRITER = ("inline_container", "PytorchStreamWriter")
_NEARLY_FULL = 1 << 20  # bytes free below which a failed torch.save is taken for a full disk


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its optimizer step and folder."""

    step: int
    path: Path
    seconds: float | None = field(default=None, compare=False)  # the save's wall time (write, fsync, rename)
    size: int | None = field(default=None, compare=False)  # bytes on disk

    def marker(self) -> dict[str, Any]:
        """The marker's content ({} when it cannot be read)."""
        try:
            return json.loads((self.path / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "path": str(self.path)}


def checkpoints_dir(output_dir: Path | str) -> Path:
    """Where a run's checkpoints live: OUTPUT/<run-id>/checkpoints."""
    return Path(output_dir) / CHECKPOINTS


def complete_checkpoints(output_dir: Path | str) -> list[Checkpoint]:
    """The complete checkpoints of a run's output folder, oldest step first."""
    found = []
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_dir() and (entry / MARKER).is_file():
            found.append(Checkpoint(int(match.group(1)), entry))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def last_checkpoint(output_dir: Path | str) -> Checkpoint | None:
    """The newest complete checkpoint of a run's output folder, or None."""
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def describe_contents(output_dir: Path | str) -> str:
    """What a run's checkpoints folder holds, for an error that found no complete checkpoint."""
    folder = checkpoints_dir(output_dir)
    if not Path(output_dir).is_dir():
        return f"the output folder {output_dir} does not exist"
    if not folder.is_dir():
        return (
            f"{folder} does not exist (the run had no training.save_every, or stopped before its first one)"
        )
    names = sorted(entry.name for entry in folder.iterdir())
    if not names:
        return f"{folder} is empty"
    partial = [name for name in names if name.startswith(STAGING) or _NAME.match(name)]
    return f"{folder} holds only incomplete checkpoints: {', '.join(partial or names)}"


def remove_partial(folder: Path) -> list[str]:
    """Delete what an interrupted save left in a checkpoints folder (staging folders, checkpoint folders without
    the marker); returns their names."""
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        partial = entry.name.startswith(STAGING) or (
            _NAME.match(entry.name) and not (entry / MARKER).is_file()
        )
        if partial and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def rotate(output_dir: Path, keep: int) -> list[int]:
    """Delete all but the newest `keep` complete checkpoints; returns the deleted steps."""
    found = complete_checkpoints(output_dir)
    old = found[: max(len(found) - max(keep, 1), 0)]
    for checkpoint in old:
        shutil.rmtree(checkpoint.path, ignore_errors=True)
    return [checkpoint.step for checkpoint in old]


def _disk_full(error: Exception, folder: Path) -> bool:
    """Whether `error`, raised by torch.save's writer, is the disk filling up: that writer reports a short write
    only as a position mismatch ("unexpected pos ..."), so the free space left decides. (Errors that say what
    they are go through output_files.is_write_error.)"""
    if not any(mark in str(error) for mark in _TORCH_WRITER):
        return False
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpoints:
    """Makes a Trainer's checkpoint saves atomic (see the module docstring), rotates them, and calls `on_saved`
    with each complete one. `loss_base` is the sum of the per-step losses before this session (from the checkpoint
    a resumed run starts at), so each marker holds the whole run's loss sum up to its step."""

    def __init__(
        self,
        trainer: Any,
        output_dir: Path,
        keep: int,
        on_saved: Callable[[Checkpoint], None] | None = None,
        loss_base: float = 0.0,
    ):
        self.trainer = trainer
        self.output_dir = Path(output_dir)
        self.keep = keep
        self.on_saved = on_saved
        self.loss_base = loss_base
        self.saved: list[Checkpoint] = []
        self.removed_partial: list[str] = []
        self._original: Callable[..., None] | None = None

    def install(self) -> AtomicCheckpoints:
        """Replace the trainer's checkpoint save with the atomic one; remove what an earlier save left half-done."""
        self.removed_partial = remove_partial(checkpoints_dir(self.output_dir))
        self._original = self.trainer._save_checkpoint
        self.trainer._save_checkpoint = self._save
        return self

    def session_loss_sum(self) -> float | None:
        """The sum of the per-step training losses of this session so far (transformers' running totals)."""
        total = getattr(self.trainer, "_total_loss_scalar", None)
        pending = getattr(self.trainer, "_tr_loss", None)
        if total is None:
            return None
        return float(total) + (float(pending.item()) if pending is not None else 0.0)

    def save_now(self) -> Checkpoint | None:
        """Write a checkpoint at the current step unless one exists there (after a stop on Ctrl-C)."""
        from ftkit.train.distributed import agree

        step = self.trainer.state.global_step
        last = last_checkpoint(self.output_dir)
        wanted = step > 0 and (last is None or last.step < step)
        # Every rank takes part in a save (it waits for all of them): they decide together, and rank 0's folder
        # (the only one a rank on another machine cannot see) may say "already saved" for all.
        if not agree(wanted, every=True, device=self.trainer.args.device):
            return None
        self._save(self.trainer.model, None)
        return self.saved[-1] if self.saved else None

    def _save(self, model: Any, trial: Any) -> None:
        trainer = self.trainer
        step = trainer.state.global_step
        root = checkpoints_dir(self.output_dir)
        staging = root / f"{STAGING}{step}"
        main = trainer.args.should_save
        started = time.perf_counter()
        try:
            if main:
                root.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(staging, ignore_errors=True)
            trainer.accelerator.wait_for_everyone()  # no rank writes its RNG file into a folder being cleared
            # The Trainer writes <its output dir>/checkpoint-N: point it at the staging folder for this save.
            trainer._get_output_dir = lambda trial=None: str(staging)
            try:
                self._original(model, trial)
            finally:
                del trainer._get_output_dir
            trainer.accelerator.wait_for_everyone()  # every rank's RNG file is in before the rename
            if main:
                self._publish(root, staging, step)
            trainer.accelerator.wait_for_everyone()
        except BaseException as error:
            full = isinstance(error, Exception) and _disk_full(error, root)
            if main:
                shutil.rmtree(staging, ignore_errors=True)
            if full:
                cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                raise located(cause, root, f"checkpoint {step}") from error
            if isinstance(error, Exception) and is_write_error(error):
                raise located(error, root, f"checkpoint {step}") from error
            raise
        if main:
            final = root / f"checkpoint-{step}"
            size = sum(path.stat().st_size for path in final.rglob("*") if path.is_file())
            checkpoint = Checkpoint(step, final, round(time.perf_counter() - started, 4), size)
            self.saved.append(checkpoint)
            rotate(self.output_dir, self.keep)
            if self.on_saved is not None:
                self.on_saved(checkpoint)

    def _publish(self, root: Path, staging: Path, step: int) -> None:
        written = staging / f"checkpoint-{step}"
        session = self.session_loss_sum()
        marker = {
            "format": 1,
            "step": step,
            "loss_sum": None if session is None else self.loss_base + session,
            "files": sorted(
                path.relative_to(written).as_posix() for path in written.rglob("*") if path.is_file()
            ),
        }
        _fsync_tree(written)
        with open(written / MARKER, "w", encoding="utf-8") as handle:
            json.dump(marker, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(written)
        final = root / f"checkpoint-{step}"
        if (
            final.exists()
        ):  # an older save of this same step (a resumed run saving it again): move it aside first
            os.replace(final, staging / "replaced")
        os.replace(written, final)
        _fsync_dir(root)
        shutil.rmtree(staging, ignore_errors=True)
