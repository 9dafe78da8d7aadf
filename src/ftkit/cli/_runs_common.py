"""Shared pieces of the registry commands (runs, show, log, diff, tag, checkout, rerun, registry).

Imports stay light: `ftkit.registry` (standard library, GitPython, PyYAML) and rich's Text — never torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.cli._pending import record_pending
from ftkit.errors import RegistryError


def open_registry(path: Path | None, create: bool = False, check: bool = True):  # noqa: ANN201 - lazy import
    """Open the registry; read-only commands do not create one; `check=False` opens a damaged one (verify)."""
    from ftkit.registry.store import RunRegistry

    registry = RunRegistry.open(path, create=create, check=check)
    if check:  # a damaged registry (verify, repair) is left as it is
        record_pending(registry)
    return registry


def open_or_none(path: Path | None):  # noqa: ANN201
    """The registry, or None when none exists yet at that path (listing commands show an empty result)."""
    from ftkit.registry.store import RunRegistry, default_registry_path

    root = Path(path) if path is not None else default_registry_path()
    if not (root / ".git").exists() and (not root.exists() or not any(root.iterdir())):
        return None
    registry = RunRegistry.open(root, create=False)
    record_pending(registry)  # runs an earlier `ftkit run` could not commit (cli/_pending.py)
    return registry


def open_existing(path: Path | None):  # noqa: ANN201
    """The registry for commands that need recorded runs; RegistryError (exit 2) when there is none."""
    registry = open_or_none(path)
    if registry is None:
        raise no_registry_error(path)
    return registry


def open_existing_unchecked(path: Path | None, before: Any = None):  # noqa: ANN201
    """The registry as it is, damaged or not (verify, repair); RegistryError (exit 2) when there is none.
    `before(git_dir)` runs first (repair fixes HEAD there, so that git can open the folder)."""
    from ftkit.registry.store import RunRegistry, default_registry_path

    root = Path(path) if path is not None else default_registry_path()
    if not (root / ".git").exists():
        raise no_registry_error(path)
    if before is not None:
        before(root.absolute() / ".git")
    return RunRegistry.open(root, create=False, check=False)


def no_registry_error(path: Path | None) -> RegistryError:
    from ftkit.registry.store import default_registry_path

    root = Path(path) if path is not None else default_registry_path()
    return RegistryError(
        f"no registry at {root.absolute()}",
        hint="runs are recorded there by `ftkit run`; pass --registry DIR or set FTKIT_REGISTRY",
    )


STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "interrupted": "yellow",
    "running": "cyan",
    "lost": "magenta",
    "damaged": "bold red",
}


def lost_line(run: dict) -> str:
    """`run ID lost: REASON; last checkpoint: step N (PATH)` for a lost run (summary or run.json)."""
    checkpoint = run.get("last_checkpoint") or {}
    where = (
        f"last checkpoint: step {checkpoint.get('step')} ({checkpoint.get('path')})"
        if checkpoint
        else "no checkpoint"
    )
    return (
        f"run {run.get('id')} lost: {(run.get('lost') or {}).get('reason', 'its process is gone')}; {where}"
    )


def warn_damaged(out: Any, summaries: list[dict], registry_root: Path, limit: int = 10) -> None:
    """One warning line per damaged file of any run (first `limit`), then what to do; nothing when all is well."""
    from ftkit.registry import damage

    found = [line for s in summaries if "damage" in s for line in damage.lines(s["id"], s["damage"])]
    for line in found[:limit]:
        out.warn(line)
    if len(found) > limit:
        out.warn(f"… and {len(found) - limit} more damaged file(s)")
    if found:
        out.warn(damage.repair_hint(registry_root))


VERDICT_STYLE = {"better": "green", "worse": "red"}


def status_text(status: str | None) -> Any:
    """A run status as rich Text, coloured (no markup parsing, so nothing needs escaping)."""
    from rich.text import Text

    return Text(status or "?", style=STATUS_STYLE.get(status or "", ""))
