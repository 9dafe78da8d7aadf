"""`ftkit run`'s side of a run's registry life (registry/lifecycle.py): the `running` commit before the model loads,
the heartbeat, the updates while it trains, SIGTERM taken as Ctrl-C, and the commits no Ctrl-C may cut in half.

- `start()` commits the run as `running` and starts the heartbeat; from then on SIGTERM raises KeyboardInterrupt
  like Ctrl-C (the trainer's GracefulStop turns either into "finish the step, save, stop").
- `update(**facts)` / `checkpoint(checkpoint)` record what the run learns (resolved recipe, last checkpoint); a
  failed update is a warning, never the end of the run.
- `shield()` holds Ctrl-C and SIGTERM back while the final record is committed (or kept pending): a commit either
  completes or its pending record is written, never neither.
- `abandon(error)` records the run when an error or a second Ctrl-C ends it before its final record: failed or
  interrupted, with what was saved.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.markup import escape

from ftkit.errors import FtkitError, RegistryError

_SHIELD_NOTE = b"\nftkit: finishing the registry record of this run first (it takes a moment)\n"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class RunLife:
    """The registry record of the run `record` (a RunRecord) while `ftkit run` trains it, or `ftkit resume`
    continues it (`take_sigterm()` at once, then `resumed()` in place of `start()`)."""

    def __init__(self, registry: Any, output: Any, record: Any):
        self.registry = registry
        self.output = output
        self.record = record
        self.started = False
        self.finished = False
        self._heartbeat: Any = None
        self._sigterm: Any = None

    def start(self) -> None:
        """Commit the run as `running` (shielded), start its heartbeat, and take SIGTERM as Ctrl-C."""
        with self.shield() as signalled:
            self.registry.start_run(self.record)
            self.started = True
        self._beat()
        self.take_sigterm()
        if signalled:
            raise KeyboardInterrupt

    def take_sigterm(self) -> None:
        """From now on SIGTERM raises KeyboardInterrupt like Ctrl-C (in the main thread; elsewhere it keeps its
        default)."""
        if self._sigterm is None:
            with contextlib.suppress(ValueError):
                self._sigterm = signal.signal(signal.SIGTERM, _interrupt)

    def resumed(self) -> None:
        """`ftkit resume`, once the run's settings are known to match its checkpoint: the run is `running` again
        (shielded) and its heartbeat starts. A Ctrl-C or SIGTERM that came during the commit is delivered again
        after it, so it stops the run as it would have."""
        with self.shield() as signalled:
            self.registry.resume_run(self.record.run_id)
            self.started = True
        self._beat()
        for signum in signalled[:1]:
            os.kill(os.getpid(), signum)

    def _beat(self) -> None:
        from ftkit.registry.liveness import Heartbeat

        self._heartbeat = Heartbeat(self.registry.root, self.record.run_id).start()

    def close(self) -> None:
        """Stop the heartbeat and give SIGTERM back its previous handler."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None

    def update(self, **facts: Any) -> None:
        """Record facts of the running run (lifecycle.FACTS); a failure is a warning."""
        import git

        try:
            self.registry.update_run(self.record.run_id, **facts)
        except (RegistryError, OSError, git.GitError) as error:
            reason = error.message if isinstance(error, RegistryError) else str(error)
            self.output.warn(f"run {self.record.run_id}: could not record {', '.join(facts)}: {reason}")

    def checkpoint(self, checkpoint: Any) -> None:
        """Record a complete checkpoint (train/checkpoints.Checkpoint) as the run's last one."""
        self.update(last_checkpoint={"step": checkpoint.step, "path": str(checkpoint.path)})

    @contextlib.contextmanager
    def shield(self) -> Iterator[list[int]]:
        """Hold Ctrl-C and SIGTERM back for the block; yields the list of signals that arrived meanwhile."""
        arrived: list[int] = []

        def hold(signum: int, frame: Any) -> None:
            if not arrived:
                os.write(2, _SHIELD_NOTE)
            arrived.append(signum)

        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):
                previous[signum] = signal.signal(signum, hold)
        try:
            yield arrived
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def abandon(self, error: BaseException) -> None:
        """Record the run that `error` ended before its final record (failed, or interrupted for Ctrl-C), with a
        note on stderr saying what was recorded and saved; errors of that commit only warn."""
        self.close()
        if not self.started or self.finished:
            return
        from ftkit.registry.records import now_iso

        record = self.record
        interrupted = isinstance(error, KeyboardInterrupt)
        record.status = "interrupted" if interrupted else "failed"
        record.ended_at = now_iso()
        if interrupted:
            record.error = "interrupted by the user (Ctrl-C or SIGTERM) before the run finished"
        elif isinstance(error, FtkitError):
            record.error = error.message
        else:
            record.error = f"{type(error).__name__}: {error}"
        saved = saved_output(record.output_dir)
        if saved is None:
            record.output_dir = None
        with self.shield():
            self.commit_final(record)
        if interrupted:
            self.output.warn(f"run {record.run_id} recorded as interrupted; {saved or 'nothing was saved'}")
        else:
            self.output.warn(f"run {record.run_id} recorded as failed: {escape(record.error)}")

    def commit_final(self, record: Any, artifacts: list[dict] | None = None) -> None:
        """Finish the run in the registry, or keep its record pending when the commit fails (warned)."""
        import git

        from ftkit.registry import pending

        try:
            self.registry.finish_run(record, artifacts)
            self.finished = True
        except (RegistryError, OSError, git.GitError) as error:
            reason = error.message if isinstance(error, RegistryError) else str(error)
            try:
                kept = pending.keep(self.registry.root, record, artifacts, reason)
                self.output.warn(
                    f"run {record.run_id} was not recorded ({reason}); its record is kept in {kept}"
                )
            except RegistryError as lost:
                self.output.warn(f"run {record.run_id} was not recorded ({reason}): {lost.message}")


def saved_output(output_dir: str | None) -> str | None:
    """What an interrupted run left in its output folder, in words ("the trained model is saved in DIR", "the last
    checkpoint is DIR/checkpoints/checkpoint-N"); None when nothing was saved."""
    if not output_dir or not Path(output_dir).is_dir():
        return None
    folder = Path(output_dir)
    model = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in ("metrics.json", "events.jsonl")
    ]
    if model:
        return f"what was trained is saved in {escape(str(folder))}"
    checkpoints = sorted(
        (
            p
            for p in (folder / "checkpoints").glob("checkpoint-*")
            if p.is_dir() and p.name.split("-")[-1].isdigit()
        ),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if checkpoints:
        return f"the last checkpoint is {escape(str(checkpoints[-1]))}"
    return None
