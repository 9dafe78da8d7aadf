"""The run's live event log: `OUTPUT/<run-id>/events.jsonl`, one JSON object per line, appended as things happen.

Every run event (the same rows the registry's events.jsonl gets at the end) and every per-step progress row (kind
`progress`: step, loss, learning rate, tokens/s, as in the history) is written and flushed line by line, so
`ftkit logs RUN -f` in another terminal follows a run in progress. Rows are scrubbed of secrets like the registry
copy. The output folder is only created when training starts (a run that stops on its data or its recipe leaves no
folder behind), so the rows from before that are held in memory and written first, when the folder is opened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LIVE_EVENTS_FILE = "events.jsonl"
PROGRESS_KIND = "progress"


class EventLog:
    """Appends scrubbed rows to `FOLDER/events.jsonl` once `open(FOLDER)` is called; holds them until then."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._held: list[dict[str, Any]] = []
        self._env_values: list[str] | None = None

    def open(self, folder: Path) -> None:
        """Start writing into `folder` (which exists): the held rows first, then each row as it comes."""
        self.path = Path(folder) / LIVE_EVENTS_FILE
        held, self._held = self._held, []
        for row in held:
            self._write(row)

    def append(self, row: dict[str, Any]) -> None:
        """Log one event row (time, kind, message and its data)."""
        if self.path is None:
            self._held.append(row)
        else:
            self._write(row)

    def progress(self, row: dict[str, Any], total_steps: int | None = None) -> None:
        """Log one progress row of the history (step, time_s, loss, learning_rate, tokens_per_sec, ...)."""
        from ftkit.train.run_result import now_iso

        parts = [f"step {row.get('step')}" + (f"/{total_steps}" if total_steps else "")]
        for key, label, spec in (
            ("loss", "loss", ".4f"),
            ("eval_loss", "eval loss", ".4f"),
            ("learning_rate", "lr", ".3g"),
            ("tokens_per_sec", "tokens/s", ".0f"),
        ):
            if isinstance(row.get(key), (int, float)):
                parts.append(f"{label} {format(row[key], spec)}")
        total = {"total_steps": total_steps} if total_steps else {}  # `ftkit ui` shows step N of total
        self.append({"time": now_iso(), "kind": PROGRESS_KIND, "message": ", ".join(parts), **row, **total})

    def _write(self, row: dict[str, Any]) -> None:
        from ftkit.registry import scrub
        from ftkit.registry.records import json_safe

        if self._env_values is None:
            self._env_values = scrub.env_secret_values()
        clean = scrub.scrub_data(json_safe(row), self._env_values)
        line = json.dumps(clean, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        except OSError:  # the live log is a convenience: a full disk here must not end the run (the registry
            self.path = None  # keeps its own copy); stop trying
            self._held = []


def read_events(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a live events file (a half-written last line is left for the next read)."""
    rows: list[dict[str, Any]] = []
    data = Path(path).read_bytes()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
