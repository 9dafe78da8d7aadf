"""TEST-ONLY pause points, so fault tests can `kill -9` a real `ftkit run` at an exact moment.

With FTKIT_TEST_PAUSE_AT=<point> in its environment, a process that reaches `<point>` prints
`FTKIT-TEST-PAUSED <point> pid=<pid>` on stderr and sleeps until it is killed. Without the variable (always, outside
the fault tests: tests/cli/test_run_faults.py) `pause_at` is one environment look-up. Points:

    model-load         the runner, just before the base model is loaded (the run is committed as `running`)
    final-save         the runner, inside the final save: some weight files written, not yet moved into place
    registry-commit    the final commit, while its ref update is in flight (ftkit's writer note is on disk)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

ENV = "FTKIT_TEST_PAUSE_AT"
MARKER = "FTKIT-TEST-PAUSED"
_inside: set[str] = set()


def pause_at(point: str) -> None:
    """Sleep forever at `point` when FTKIT_TEST_PAUSE_AT names it (test-only; see the module docstring)."""
    if os.environ.get(ENV) != point:
        return
    sys.stderr.write(f"{MARKER} {point} pid={os.getpid()}\n")
    sys.stderr.flush()
    while True:
        time.sleep(3600)


@contextlib.contextmanager
def inside(point: str) -> Iterator[None]:
    """Mark a stretch of code as `point`, so that a lower layer (a ref update) pauses there and nowhere else."""
    _inside.add(point)
    try:
        yield
    finally:
        _inside.discard(point)


def pause_if_inside(point: str) -> None:
    """`pause_at(point)`, but only within `inside(point)`."""
    if point in _inside:
        pause_at(point)
