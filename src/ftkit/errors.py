"""Errors meant for people: what is wrong, where, and what to do next.

Every error ftkit raises on purpose is an FtkitError. The CLI turns it into a message, a hint and an exit code;
no traceback reaches the user unless FTKIT_DEBUG=1.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RUN_FAILED = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


class FtkitError(Exception):
    """Base error. `problems` lists located findings ("file:line: key: message") reported all at once."""

    exit_code: int = ExitCode.BAD_INPUT
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems = list(problems or [])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint, "problems": self.problems}


class UsageError(FtkitError):
    kind = "usage"


class RecipeError(FtkitError):
    kind = "recipe"


class DataError(FtkitError):
    kind = "data"


class ModelError(FtkitError):
    kind = "model"


class MethodError(FtkitError):
    kind = "method"


class MissingDependencyError(FtkitError):
    kind = "missing-dependency"


class RegistryError(FtkitError):
    kind = "registry"


class GateFailedError(FtkitError):
    kind = "gate-failed"
    exit_code = ExitCode.RUN_FAILED
