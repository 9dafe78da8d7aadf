"""`ftkit registry push|pull|remote`: share the run registry through any git remote (verify and repair: in
registry_check.py).

Each run is a commit that only adds its own folder, so pulling runs recorded elsewhere merges without conflicts;
tags moved on both sides resolve to the later move.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import json_option, registry_option
from ftkit.cli._output import Output
from ftkit.cli._runs_common import open_registry
from ftkit.cli.registry_check import repair_command, verify_command
from ftkit.registry.scrub import mask_url

registry_app = typer.Typer(
    name="registry",
    help="Share the run registry through a git remote, and check it (push, pull, remote, verify, repair).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_REMOTE_HELP = "A configured remote name (default origin), a git URL or a path."


@registry_app.command("push")
def push_command(
    remote: str = typer.Argument("origin", help=_REMOTE_HELP),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Publish this registry's runs and tags to REMOTE (pulling first when the remote has moved on)."""
    out = Output(json_mode)
    with open_registry(registry, create=False) as reg:
        result = reg.push(remote)
    out.emit(result)
    merged = result.get("merged_runs") or []
    extra = f" after merging {len(merged)} run(s) from it" if merged else ""
    out.note(f"pushed the registry to {escape(mask_url(remote))}{extra}")


@registry_app.command("pull")
def pull_command(
    remote: str = typer.Argument("origin", help=_REMOTE_HELP),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """Fetch REMOTE's runs and tags and merge them into this registry (created if missing)."""
    out = Output(json_mode)
    with open_registry(registry, create=True) as reg:
        result = reg.pull(remote)
    out.emit(result)
    kind = result["result"]
    if kind == "remote-empty":
        out.note(f"{escape(mask_url(remote))} has no runs yet")
    elif kind == "up-to-date":
        out.note("already up to date")
    else:
        out.note(f"pulled {len(result['new_runs'])} new run(s) from {escape(mask_url(remote))} ({kind})")
        if result["tags"]:
            out.note(f"tags updated: {escape(', '.join(result['tags']))}")


@registry_app.command("remote")
def remote_command(
    name: str | None = typer.Argument(None, help="Remote name, e.g. origin. Omit to list remotes."),
    url: str | None = typer.Argument(None, help="Git URL or path of the shared registry."),
    json_mode: bool = json_option(),
    registry: Path | None = registry_option(),
) -> None:
    """List remotes, or set remote NAME to URL."""
    out = Output(json_mode)
    with open_registry(registry, create=url is not None) as reg:
        if name is not None and url is not None:
            reg.set_remote(name, url)
        remotes = reg.remotes()
    out.emit({"remotes": remotes})
    if name is not None and url is None:
        out.print(escape(remotes.get(name, "")) or f"no remote named {escape(name)}")
        return
    for key, value in remotes.items():
        out.print(f"{escape(key)}\t{escape(value)}")
    if not remotes:
        out.note("no remotes: ftkit registry remote origin URL")


registry_app.command("verify")(verify_command)
registry_app.command("repair")(repair_command)


def register(app: typer.Typer) -> None:
    """Add the `ftkit registry` group."""
    app.add_typer(registry_app, name="registry")
