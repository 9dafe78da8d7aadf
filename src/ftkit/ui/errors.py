"""Errors the API turns into HTTP statuses (ui/app.py): NotFound → 404; any other FtkitError → 400 when it is bad
input (exit code 2), else 500."""

from __future__ import annotations

from ftkit.errors import FtkitError


class NotFound(FtkitError):
    """What the request names does not exist (a run, a job, an upload)."""
