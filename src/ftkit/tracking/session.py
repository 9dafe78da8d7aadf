"""One run's experiment trackers (the recipe's `tracking:`): started together, fed each history row, finished with
the run's final metrics and files, and never the reason a run is lost.

- `start_tracking(...)` starts each tracker the recipe names. One that cannot start (package missing, server down,
  wrong URI, not logged in) is reported once as a warning and left out; the run goes on.
- `Tracking.log_row(row)` hands a history row to a background thread, so a slow tracker (an MLflow server over
  HTTP) costs the training loop nothing but a queue put. A tracker that fails there is warned about once (on the
  next row, from the training thread) and dropped.
- `Tracking.finish(status, metrics, files)` waits for the queue, then gives every tracker still working the run's
  final metrics (base and tuned), its files (resolved recipe, model card) and its end status.

The backends are `ftkit.tracking.mlflow_tracker`, `tensorboard_tracker` and `wandb_tracker`; each is imported only
when the recipe names it.
"""

from __future__ import annotations

import importlib
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

BACKENDS = {
    "mlflow": "ftkit.tracking.mlflow_tracker",
    "tensorboard": "ftkit.tracking.tensorboard_tracker",
    "wandb": "ftkit.tracking.wandb_tracker",
}
_DRAIN_TIMEOUT_S = 120.0  # finish() waits at most this long for rows still queued (a hung server)
_SKIPPED_KEYS = ("step", "time_s")


@dataclass
class RunInfo:
    """What a tracker is told about the run when it starts."""

    run_id: str
    run_name: str
    resolved: dict[str, Any]
    output_dir: Path
    method: str
    model: str
    config_hash: str
    tags: dict[str, str] = field(default_factory=dict)


class Tracker(Protocol):
    """One experiment tracker. Any exception a method raises turns the tracker off for the rest of the run."""

    name: str

    def start(self, run: RunInfo) -> dict[str, Any]:
        """Open the tracker's run; returns what the registry records (ids, folders, URLs)."""
        ...

    def log(self, step: int, values: dict[str, float]) -> None:
        """Record one step's metrics."""
        ...

    def finish(self, status: str, step: int, final: dict[str, float], files: dict[str, str]) -> None:
        """Record the final metrics and files (name -> text) and close the run with ftkit's status."""
        ...


def step_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A history row as curve names: `loss` -> train/loss, `eval_loss` -> eval/loss, `epoch` -> train/epoch.
    Curves use a slash and final metrics ftkit's dotted names (`train.loss` is the run's mean loss, `eval.loss`
    the tuned model's), so a final figure never lands as one more point of a curve. Only finite numbers: a
    tracker's store is not the place where a NaN is explained (the registry keeps it)."""
    values: dict[str, float] = {}
    for key, value in row.items():
        if key in _SKIPPED_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        name = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
        values[name] = float(value)
    return values


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The run's metrics (dotted names, as `ftkit show` lists them) that are finite numbers."""
    from ftkit.registry.diff import flatten

    return {
        key: float(value)
        for key, value in flatten(metrics).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


class Tracking:
    """The trackers of one run (possibly none). Build it with `start_tracking`."""

    def __init__(self, trackers: list[Tracker], facts: dict[str, Any], warn: Callable[[str], None]):
        self.trackers = trackers
        self.facts = facts  # tracker name -> what the registry records about its run
        self._warn = warn
        self._failed: dict[str, str] = {}  # name -> reason, set on the worker thread
        self._warned: set[str] = set()
        self._last_step = 0
        self._queue: queue.Queue[tuple[int, dict[str, float]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        if trackers:
            self._worker = threading.Thread(target=self._work, name="ftkit-tracking", daemon=True)
            self._worker.start()

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_row(self, row: dict[str, Any], total_steps: int | None = None) -> None:
        """Queue one history row (step, loss, eval_loss, ...) for every tracker."""
        self._report_failures()
        if not self.trackers:
            return
        step = int(row.get("step") or 0)
        self._last_step = max(self._last_step, step)
        values = step_metrics(row)
        if values:
            self._queue.put((step, values))

    def finish(self, status: str, metrics: dict[str, Any], files: dict[str, str]) -> None:
        """Wait for the queued rows, then close every working tracker with the final metrics, files and status."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(_DRAIN_TIMEOUT_S)
            if self._worker.is_alive():
                for tracker in self.trackers:
                    self._failed.setdefault(
                        tracker.name, f"rows still unsent after {_DRAIN_TIMEOUT_S:.0f} s; the tracker hangs"
                    )
            self._worker = None
        self._report_failures()
        final = final_metrics(metrics)
        for tracker in self._working():
            try:
                tracker.finish(status, self._last_step, final, files)
            except Exception as error:  # noqa: BLE001 - a tracker never ends the run
                self._fail(tracker.name, error)
        self._report_failures()
        self.trackers = []

    def _working(self) -> list[Tracker]:
        return [tracker for tracker in self.trackers if tracker.name not in self._failed]

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            step, values = item
            for tracker in self._working():
                try:
                    tracker.log(step, values)
                except Exception as error:  # noqa: BLE001 - reported from the training thread
                    self._fail(tracker.name, error)

    def _fail(self, name: str, error: BaseException) -> None:
        self._failed.setdefault(name, describe_error(error))

    def _report_failures(self) -> None:
        for name, reason in list(self._failed.items()):
            if name not in self._warned:
                self._warned.add(name)
                self._warn(f"tracking: {name} stopped reporting ({reason}); the run goes on without it")


def start_tracking(
    config: Any, run: RunInfo, warn: Callable[[str], None], where: Callable[[str], str]
) -> Tracking:
    """Start the trackers `config` (recipe TrackingConfig) names. `warn(message)` reports a tracker that cannot
    start (once; the run goes on without it); `where(key)` locates a recipe key for that message."""
    trackers: list[Tracker] = []
    facts: dict[str, Any] = {}
    for name in config.enabled():
        options = getattr(config, name)
        try:
            tracker = importlib.import_module(BACKENDS[name]).make_tracker(options)
            facts[name] = tracker.start(run)  # imports the tracker's package
        except ImportError as error:
            warn(
                f"tracking: {where('tracking.' + name)}: {name} is not installed ({error.name or error}); the "
                "run goes on without it. Install the trackers with: pip install 'ftkit[track]'"
            )
            continue
        except Exception as error:  # noqa: BLE001 - a tracker that cannot start never stops the run
            warn(
                f"tracking: {where('tracking.' + name)}: {name} could not start ({describe_error(error)}); "
                "the run goes on without it"
            )
            continue
        trackers.append(tracker)
    return Tracking(trackers, facts, warn)


def describe_error(error: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__
