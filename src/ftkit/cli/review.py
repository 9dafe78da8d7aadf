"""`ftkit review RUN`: the review of a recorded run — each finding with its evidence and a ready command.

The review is computed when the run is recorded (`review.json` in the run folder) and read back here; a run
recorded before reviews existed is reviewed now from its own files, and the output says so.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_existing

COMPUTED_NOW = (
    "computed now: this run was recorded before ftkit stored reviews (its folder has no review.json)"
)


def registry_flag(registry_path: Path | None) -> str:
    """` --registry PATH` for commands shown to the user when the registry was named and is not the one
    FTKIT_REGISTRY already names; else empty."""
    if registry_path is None or os.environ.get("FTKIT_REGISTRY") == str(registry_path):
        return ""
    return f" --registry {shlex.quote(str(registry_path))}"


def stored_or_computed(loaded: dict[str, Any]) -> tuple[Any, bool]:
    """(Review, computed now?) for a `load_run` dict: its stored review.json, or one computed from its files."""
    from ftkit.review import Review, review_run

    if isinstance(loaded.get("review"), dict):
        return Review.from_dict(loaded["review"]), False
    return review_run(loaded), True


def review_of_record(record: Any, warn: Any) -> dict | None:
    """The review document of a RunRecord about to be committed; None (with a warning through `warn`) when the
    review itself fails, so a bug in a rule can never cost the run its record."""
    from ftkit.review import review_run, run_of_record

    try:
        return review_run(run_of_record(record)).to_dict()
    except Exception as error:  # noqa: BLE001 - the run matters more than its review
        warn(
            f"the run's review could not be computed ({type(error).__name__}: {error}); `ftkit review` retries it"
        )
        return None


def show_review_summary(out: Output, review: dict | None, registry_path: Path | None) -> None:
    """The short review printed at the end of `ftkit run` and `ftkit tune` (nothing when there is none)."""
    if review is None:
        return
    from ftkit.review import Review, render_summary

    render_summary(Review.from_dict(review), out, registry_flag(registry_path))


def review_command(
    run: str = typer.Argument(..., help="Run id, unique id prefix, name, tag, @latest or @latest~N."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Review a run: findings with their evidence and a ready command each, or one line when it is healthy."""
    from ftkit.review import render_review

    out = Output(json_mode)
    reg = open_existing(registry)
    with reg:
        run_id = reg.resolve(run)
        loaded = reg.load_run(run_id)
    review, computed = stored_or_computed(loaded)
    out.emit({**review.to_dict(), "computed_now": computed, "registry": str(reg.root)})
    render_review(review, out, registry_flag(registry), COMPUTED_NOW if computed else None)


def register(app: typer.Typer) -> None:
    """Add `ftkit review`."""
    app.command("review")(review_command)
