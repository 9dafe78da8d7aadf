"""`ftkit logs RUN [-f]`: a run's events, from its output folder's live `events.jsonl` (train/event_log.py) when it
exists, else from the registry record; `-f` follows a run in progress until it is no longer `running`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._runs_common import open_existing

POLL_S = 0.5


def _load(registry: Path | None, ref: str) -> tuple[str, dict]:
    """(run id, the run's registry files parsed), read afresh (the status changes while a run goes on)."""
    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(ref)
        return run_id, reg.load_run(run_id)


def _live_path(loaded: dict) -> Path | None:
    from ftkit.train.event_log import LIVE_EVENTS_FILE

    output_dir = (loaded.get("run") or {}).get("output_dir")
    return Path(output_dir) / LIVE_EVENTS_FILE if output_dir else None


def _rows(loaded: dict) -> list[dict[str, Any]]:
    """The live file's rows when it exists, else the registry's events."""
    from ftkit.train.event_log import read_events

    path = _live_path(loaded)
    if path is not None and path.is_file():
        return read_events(path)
    return list(loaded.get("events") or [])


def _print(rows: list[dict[str, Any]], json_mode: bool) -> None:
    for row in rows:
        if json_mode:
            line = json.dumps(row, sort_keys=True, ensure_ascii=False)
        else:
            line = f"{row.get('time', '')}  {row.get('kind', '?'):<9} {row.get('message', '')}"
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _still_running(registry: Path | None, loaded: dict) -> bool:
    from ftkit.registry import liveness
    from ftkit.registry.store import default_registry_path

    run = loaded.get("run") or {}
    if run.get("status") != "running":
        return False
    root = Path(registry) if registry is not None else default_registry_path()
    return liveness.lost_reason(root, run) is None


def logs_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new events until the run is no longer running."
    ),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Print a run's events (time, kind, message; JSON lines with --json); -f follows a run in progress."""
    run_id, loaded = _load(registry, run)
    rows = _rows(loaded)
    _print(rows, json_mode)
    if not follow:
        return
    shown = len(rows)
    try:  # Ctrl-C stops watching, not the run: a clean exit 0
        while _still_running(registry, loaded):
            time.sleep(POLL_S)
            _, loaded = _load(registry, run_id)
            rows = _rows(loaded)
            _print(rows[shown:], json_mode)
            shown = max(shown, len(rows))
        rows = _rows(loaded)  # what was written between the last read and the final record
        _print(rows[shown:], json_mode)
    except KeyboardInterrupt:
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add `ftkit logs`."""
    app.command("logs")(logs_command)
