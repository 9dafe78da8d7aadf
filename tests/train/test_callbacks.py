"""ftkit's trainer callbacks: importing them loads no heavy library; made into transformers callbacks they record
the history, report progress and stop gracefully on the first Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from ftkit.train.callbacks import GracefulStop, ProgressTracker, SilentReporter, trainer_callback

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


def test_importing_the_training_modules_loads_no_heavy_library():
    probe = (
        "import sys\n"
        "import ftkit.train.callbacks, ftkit.train.runner, ftkit.train.trainer\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


class Recorder(SilentReporter):
    def __init__(self) -> None:
        super().__init__()
        self.progress: list[tuple] = []

    def progress_start(self, total_steps: int) -> None:
        self.progress.append(("start", total_steps))

    def progress_update(self, step: int, total_steps: int, values: dict[str, float]) -> None:
        self.progress.append(("update", step, total_steps, values["loss"]))

    def progress_end(self) -> None:
        self.progress.append(("end",))


def test_progress_tracker_is_a_trainer_callback_that_keeps_the_history():
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

    reporter = Recorder()
    tracker = trainer_callback(ProgressTracker, reporter)
    assert isinstance(tracker, TrainerCallback) and isinstance(tracker, ProgressTracker)
    assert type(trainer_callback(ProgressTracker, reporter)) is type(tracker)  # one class, built once

    args, state, control = (
        TrainingArguments(output_dir="unused", report_to="none"),
        TrainerState(),
        TrainerControl(),
    )
    state.max_steps = 2
    tracker.on_train_begin(args, state, control)
    state.global_step = 1
    tracker.on_log(args, state, control, logs={"train_runtime": 1.0})  # nothing tracked: no history row
    state.global_step, state.num_input_tokens_seen = 2, 40
    tracker.on_log(args, state, control, logs={"loss": 2.5, "learning_rate": 0.1, "ignored": 7})
    tracker.on_step_end(args, state, control)  # an event ProgressTracker does not handle: transformers' no-op
    tracker.on_train_end(args, state, control)

    (row,) = tracker.history
    assert {key: row[key] for key in ("step", "loss", "learning_rate")} == {
        "step": 2,
        "loss": 2.5,
        "learning_rate": 0.1,
    }
    assert set(row) == {"step", "time_s", "loss", "learning_rate", "tokens_per_sec"}
    assert row["tokens_per_sec"] > 0 and tracker.tokens_seen == 40
    assert reporter.progress == [("start", 2), ("update", 2, 2, 2.5), ("end",)]


def test_graceful_stop_finishes_the_step_then_stops_and_a_second_ctrl_c_aborts():
    from transformers import TrainerControl, TrainerState

    reporter = Recorder()
    stopper = trainer_callback(GracefulStop, reporter)
    before = signal.getsignal(signal.SIGINT)
    stopper.install()
    try:
        control = stopper.on_step_end(None, TrainerState(), TrainerControl())
        assert not control.should_training_stop
        signal.raise_signal(signal.SIGINT)
        assert stopper.requested and reporter.events[0]["kind"] == "interrupt"
        control = stopper.on_step_end(None, TrainerState(), TrainerControl())
        assert control.should_training_stop and not control.should_save
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        stopper.uninstall()
    assert signal.getsignal(signal.SIGINT) is before
