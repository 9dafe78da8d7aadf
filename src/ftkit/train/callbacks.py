"""Trainer callbacks: progress reporting, per-step history, and a graceful stop on Ctrl-C or SIGTERM.

The callback logic lives in plain classes so that importing this module (the CLI does, for `Reporter`) loads no
transformers; `trainer_callback(kind, ...)` makes an instance that is also a transformers `TrainerCallback`,
importing transformers only then.
"""

from __future__ import annotations

import functools
import signal
import time
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Reporter(Protocol):
    """What the training loop tells the outside world. The CLI implements it with rich; tests may record it."""

    def event(self, kind: str, message: str, **data: Any) -> None: ...

    def progress_start(self, total_steps: int) -> None: ...

    def progress_update(self, step: int, total_steps: int, values: dict[str, float]) -> None: ...

    def progress_end(self) -> None: ...


class SilentReporter:
    """A Reporter that records events and prints nothing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def event(self, kind: str, message: str, **data: Any) -> None:
        self.events.append({"kind": kind, "message": message, **data})

    def progress_start(self, total_steps: int) -> None:
        pass

    def progress_update(self, step: int, total_steps: int, values: dict[str, float]) -> None:
        pass

    def progress_end(self) -> None:
        pass


def trainer_callback(kind: type[T], *args: Any, **kwargs: Any) -> T:
    """`kind(*args, **kwargs)` as a transformers `TrainerCallback` too (every event it does not handle is a
    no-op), so a Trainer accepts it and the caller still reads its state as a `kind`."""
    return _with_trainer_callback_base(kind)(*args, **kwargs)


@functools.cache
def _with_trainer_callback_base(kind: type) -> type:
    from transformers import TrainerCallback

    namespace = {"__module__": kind.__module__, "__doc__": kind.__doc__, "__qualname__": kind.__qualname__}
    return type(kind.__name__, (kind, TrainerCallback), namespace)


class ProgressTracker:
    """Feeds step, loss, learning rate and tokens/s to a Reporter and keeps the per-step history.
    (Not transformers' ProgressCallback, the tqdm bar ftkit removes from every Trainer.)"""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.history: list[dict[str, Any]] = []
        self.on_row: Any = None  # called with each history row and the total steps (the run's live event log)
        self.started = 0.0
        self.tokens_seen = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.reporter.progress_start(state.max_steps)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        tokens = getattr(state, "num_input_tokens_seen", 0) or 0
        values: dict[str, float] = {}
        for key in ("loss", "learning_rate", "grad_norm", "eval_loss", "epoch"):
            if key in logs:
                values[key] = float(logs[key])
        if tokens:
            values["tokens_per_sec"] = tokens / elapsed
            self.tokens_seen = tokens
        if values:
            self.history.append({"step": state.global_step, "time_s": round(elapsed, 3), **values})
            if self.on_row is not None:
                self.on_row(self.history[-1], state.max_steps)
            if "loss" in values:
                self.reporter.progress_update(state.global_step, state.max_steps, values)

    def on_train_end(self, args, state, control, **kwargs):
        self.reporter.progress_end()


class GracefulStop:
    """First Ctrl-C or SIGTERM: finish the current step, then stop so the run can save what it has and record it
    as interrupted. A second one aborts at once (KeyboardInterrupt); the caller still records the run."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not in the main thread: leave the default handlers
                return

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        what = "SIGTERM received" if signum == signal.SIGTERM else "Ctrl-C"
        self.reporter.event(
            "interrupt", f"{what}: stopping after this step and saving (Ctrl-C again to abort now)"
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_training_stop = True
            control.should_save = False
        return control
