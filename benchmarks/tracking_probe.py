"""`python benchmarks/tracking_probe.py run RECIPE ...`: `ftkit run` in this very process, with timers around the
runner's tracker start and finish and around each history row handed to the trackers; the timings are written as
JSON to the file named by FTKIT_BENCH_PROBE when the process exits. Used by benchmarks/tracking_overhead.py on
every side (with and without trackers), so both sides run the same code.

Measured (seconds, summed over the run):
- start_s: `start_run_tracking` (imports the tracker's package, opens its run; before the train loop);
- finish_s: `finish_run_tracking` (drains the queue, final metrics, files, close; after the train loop);
- log_row_s / log_rows: `Tracking.log_row` on the training thread (what a step pays directly);
- tracker_log_cpu_s / tracker_logs: CPU time of the background thread inside the trackers' `log` (what competes
  with training for the cores and the GIL).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def install(times: dict[str, Any]) -> None:
    """Wrap the runner's tracking hooks with timers that add into `times`."""
    import ftkit.train.runner as runner
    from ftkit.tracking import session

    start, finish, log_row = runner.start_run_tracking, runner.finish_run_tracking, session.Tracking.log_row

    def wrap_log(tracker: Any) -> None:
        log = tracker.log

        def timed_log(step: int, values: dict[str, float]) -> None:
            began = time.thread_time()
            try:
                log(step, values)
            finally:
                times["tracker_log_cpu_s"] += time.thread_time() - began
                times["tracker_logs"] += 1

        tracker.log = timed_log

    def timed_start(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        tracking = start(*args, **kwargs)
        times["start_s"] += time.perf_counter() - began
        times["trackers"] = [tracker.name for tracker in tracking.trackers]
        for tracker in tracking.trackers:
            wrap_log(tracker)
        return tracking

    def timed_finish(*args: Any, **kwargs: Any) -> None:
        began = time.perf_counter()
        try:
            finish(*args, **kwargs)
        finally:
            times["finish_s"] += time.perf_counter() - began

    def timed_log_row(self: Any, row: dict[str, Any], total_steps: int | None = None) -> None:
        began = time.perf_counter()
        try:
            log_row(self, row, total_steps)
        finally:
            times["log_row_s"] += time.perf_counter() - began
            times["log_rows"] += 1

    runner.start_run_tracking = timed_start
    runner.finish_run_tracking = timed_finish
    session.Tracking.log_row = timed_log_row


def main() -> None:
    """Run the ftkit CLI with the arguments given, timing its tracking hooks."""
    times: dict[str, Any] = {"start_s": 0.0, "finish_s": 0.0, "log_row_s": 0.0, "log_rows": 0,
                             "tracker_log_cpu_s": 0.0, "tracker_logs": 0, "trackers": []}  # fmt: skip
    path = os.environ.get("FTKIT_BENCH_PROBE")
    if path:
        atexit.register(lambda: Path(path).write_text(json.dumps(times)))
    install(times)
    from ftkit.cli.app import app

    sys.argv = ["ftkit", *sys.argv[1:]]
    app(prog_name="ftkit")


if __name__ == "__main__":
    main()
