"""What a run continued from a checkpoint needs: where it starts (`ftkit resume`: the same run, the full training
state; `ftkit rerun --from-checkpoint`: a new run, the weights only), what it must match, and the history before it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import RecipeError
from ftkit.recipe.resolve import (
    CONFIG_HASH_IGNORED_KEYS,
    CONFIG_HASH_IGNORED_TRAINING_KEYS,
    config_hash,
)
from ftkit.train.checkpoints import AtomicCheckpoints, Checkpoint


@dataclass
class ResumeFrom:
    """`ftkit resume`: continue run `run_id` from `checkpoint` in its own `output_dir`, with exactly the settings
    that wrote it (`resolved`, whose hash is `config_hash`); `history` is the run's recorded history."""

    run_id: str
    checkpoint: Checkpoint
    output_dir: Path
    resolved: dict[str, Any]
    config_hash: str
    history: list[dict[str, Any]] = field(default_factory=list)
    registry_flag: str = ""  # " --registry DIR" for the commands this prints, when one was given
    # Called once the check passed, before training: the caller marks the run `running` again there, so a refused
    # resume leaves the run as it was.
    confirmed: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        # Read now: rotation deletes this checkpoint once keep_checkpoints newer ones exist.
        value = self.checkpoint.marker().get("loss_sum")
        self._loss_sum = float(value) if isinstance(value, (int, float)) else 0.0
        self._logged = _logged_history(self.checkpoint.path)

    def check(self, resolved: dict[str, Any]) -> None:
        """RecipeError (exit 2) naming the changed keys when `resolved` would not train what the checkpoint did;
        else `confirmed()`."""
        if config_hash(resolved) == self.config_hash:
            if self.confirmed is not None:
                self.confirmed()
            return
        changes = changed_keys(self.resolved, resolved)
        sets = (
            " ".join(f"--set {shlex.quote(f'{key}={new}')}" for key, _, new in changes[:3])
            or "--set KEY=VALUE"
        )
        listed = "; ".join(f"{key}: {old!r} → {new!r}" for key, old, new in changes) or "settings differ"
        raise RecipeError(
            f"run {self.run_id} cannot resume: the resolved recipe differs from the one its checkpoint was written "
            f"with ({listed})",
            hint=f"resume continues exactly the same training; to train on from step {self.checkpoint.step} with "
            f"changes, fork it: `ftkit rerun {self.run_id} --from-checkpoint {self.checkpoint.step} {sets}"
            f"{self.registry_flag}`",
        )

    def history_before(self) -> list[dict[str, Any]]:
        """The history rows up to the checkpoint's step (the resumed session logs the rest): the recorded ones, or,
        when the run's record stops earlier (a killed run records no history), the checkpoint's own log."""
        recorded = [row for row in self.history if int(row.get("step", 0)) <= self.checkpoint.step]
        if (
            max((int(row.get("step", 0)) for row in recorded if "loss" in row), default=0)
            >= self.checkpoint.step
        ):
            return recorded
        return self._logged

    def loss_base(self) -> float:
        """The sum of the per-step losses up to the checkpoint (0.0 when its marker lacks it)."""
        return self._loss_sum

    def whole_run_metrics(
        self, session_loss: float, trainer: Any, history: list[dict], metrics: dict[str, Any]
    ) -> dict[str, Any]:
        """`train.loss` (the mean per-step loss) and `train.loss_first` over the whole run, from this session's
        mean (transformers averages only over the steps it trained) and the loss sum kept with the checkpoint;
        `train.tokens_per_sec` of this session (the token count in `metrics` is the whole run's)."""
        global_step = trainer.state.global_step
        session_steps = global_step - self.checkpoint.step
        total = self.loss_base() + session_loss * session_steps
        losses = [row["loss"] for row in history if "loss" in row]
        found = {
            "train.loss": total / global_step if global_step > 0 else session_loss,
            "train.loss_first": losses[0] if losses else None,
        }
        seen_before = getattr(trainer, "_initial_num_input_tokens_seen", 0) or 0
        if metrics.get("train.runtime_s") and metrics.get("train.tokens"):
            found["train.tokens_per_sec"] = round(
                (metrics["train.tokens"] - seen_before) / metrics["train.runtime_s"], 1
            )
        return found


@dataclass
class ForkFrom:
    """`ftkit rerun --from-checkpoint`: a new run that starts from the weights of `checkpoint` of run `run_id`
    (its optimizer, scheduler and step start afresh: the fork trains with other settings)."""

    run_id: str
    checkpoint: Checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "step": self.checkpoint.step, "path": str(self.checkpoint.path)}


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for each setting that differs and counts in the config hash."""
    from ftkit.registry.diff import flatten

    ignored = {*CONFIG_HASH_IGNORED_KEYS, *(f"training.{key}" for key in CONFIG_HASH_IGNORED_TRAINING_KEYS)}
    flat_old, flat_new = flatten(old), flatten(new)
    keys = sorted(set(flat_old) | set(flat_new))
    return [
        (key, flat_old.get(key), flat_new.get(key))
        for key in keys
        if flat_old.get(key) != flat_new.get(key) and key not in ignored and key.split(".")[0] not in ignored
    ]


def prepare_checkpoints(
    trainer: Any,
    start: ResumeFrom | ForkFrom | None,
    training: Any,
    output_dir: Path,
    event: Callable[..., None],
    on_checkpoint: Callable[[Checkpoint], None] | None,
) -> AtomicCheckpoints | None:
    """Load a fork's starting weights into the trainer's model, and install atomic, rotated checkpoints when
    `training.save_every` is set (each one reported as a `checkpoint` event, then passed to `on_checkpoint`)."""
    if isinstance(start, ForkFrom):
        trainer._load_from_checkpoint(str(start.checkpoint.path))  # weights only: transformers' own loader
        event(
            "note",
            f"starting from the weights of run {start.run_id} at step {start.checkpoint.step} "
            f"({start.checkpoint.path}); optimizer and schedule start afresh",
            start_checkpoint=start.to_dict(),
        )
    if not training.save_every:
        return None

    def saved(checkpoint: Checkpoint) -> None:
        event(
            "checkpoint",
            f"checkpoint at step {checkpoint.step}: {checkpoint.path} "
            f"({(checkpoint.size or 0) / 1048576:.1f} MiB in {checkpoint.seconds or 0:.2f} s)",
            **checkpoint.to_dict(),
            seconds=checkpoint.seconds,
            bytes=checkpoint.size,
        )
        if on_checkpoint is not None:
            on_checkpoint(checkpoint)

    loss_base = start.loss_base() if isinstance(start, ResumeFrom) else 0.0
    saver = AtomicCheckpoints(trainer, output_dir, training.keep_checkpoints, saved, loss_base).install()
    if saver.removed_partial:
        event(
            "note",
            f"removed incomplete checkpoints left by an interrupted save: {', '.join(saver.removed_partial)}",
        )
    return saver


def _logged_history(checkpoint: Path) -> list[dict[str, Any]]:
    """History rows (step, loss, learning_rate, grad_norm, epoch) from a checkpoint's trainer_state.json."""
    import json

    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    keys = ("loss", "learning_rate", "grad_norm", "eval_loss", "epoch")
    rows = []
    for logged in state.get("log_history") or []:
        values = {key: float(logged[key]) for key in keys if isinstance(logged.get(key), (int, float))}
        if values and "step" in logged:
            rows.append({"step": int(logged["step"]), **values})
    return rows
