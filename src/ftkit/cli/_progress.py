"""Live training progress for the terminal: a rich progress bar, or plain lines when not a TTY or with --json."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ftkit.cli._output import Output

_EVENT_STYLE = {"warning": "yellow", "error": "red", "interrupt": "yellow", "phase": "bold", "note": "dim"}


class TerminalReporter:
    """Implements ftkit.train.callbacks.Reporter for the CLI."""

    def __init__(self, output: Output):
        self.output = output
        self.progress: Progress | None = None
        self.task_id: Any = None
        self.last_plain = 0.0

    def event(self, kind: str, message: str, **data: Any) -> None:
        style = _EVENT_STYLE.get(kind)
        text = escape(message)
        self.output.note(f"[{style}]{text}[/{style}]" if style else text)

    def progress_start(self, total_steps: int) -> None:
        if self.output.is_interactive:
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps"),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.output.console,
                transient=False,
            )
            self.progress.start()
            self.task_id = self.progress.add_task("train", total=total_steps, stats="")

    def progress_update(self, step: int, total_steps: int, values: dict[str, float]) -> None:
        stats = _format_stats(values)
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step, stats=stats)
            return
        now = time.monotonic()
        if step == total_steps or step <= 1 or now - self.last_plain >= 2.0:
            self.last_plain = now
            self.output.note(f"step {step}/{total_steps}  {stats}")

    def progress_end(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _format_stats(values: dict[str, float]) -> str:
    parts = []
    if "loss" in values:
        parts.append(f"loss {values['loss']:.4f}")
    if "learning_rate" in values:
        parts.append(f"lr {values['learning_rate']:.2e}")
    if "tokens_per_sec" in values:
        parts.append(f"{values['tokens_per_sec']:,.0f} tok/s")
    return "  ".join(parts)
