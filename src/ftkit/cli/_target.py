"""The model a command runs on (`ftkit generate`, `ftkit chat`): locate it (registry runs through the registry),
refuse what cannot generate, load it and say what it is. Torch loads only inside `load_for_generation`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.conversation import describe  # noqa: F401  (the commands import it from here)
from ftkit.conversation import load_for_generation as shared_load_for_generation

REF_HELP = (
    "A registry run (id, unique prefix, name, tag, @latest), a run output folder, a model folder, "
    "a .gguf file or a Hub model id (owner/name)."
)


def locate(ref: str, registry_path: Path | None) -> Any:
    """The TargetSource `ref` names; a registry is read only when one exists (a path or Hub id needs none)."""
    from ftkit.cli._runs_common import open_or_none
    from ftkit.targets import locate_target

    registry = None if Path(ref).expanduser().exists() else open_or_none(registry_path)
    try:
        return locate_target(ref, registry)
    finally:
        if registry is not None:
            registry.close()


def load_for_generation(source: Any, command: str, out: Any) -> Any:
    """Load a located target for text generation (`ftkit.conversation.load_for_generation`); notes go through
    `out`."""
    return shared_load_for_generation(source, command, out.warn)
