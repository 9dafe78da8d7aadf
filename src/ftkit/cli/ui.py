"""`ftkit ui`: serve the local web app over a registry (runs, one-click jobs, compare, playground).

The server binds 127.0.0.1 unless `--host` names another address, which is said with what it exposes. Write
requests need the token the page carries and, on a loopback bind, a Host header naming this server
(ftkit/ui/security.py). The server runs until Ctrl-C; jobs it started keep running and stay in the registry.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer
from rich.markup import escape

from ftkit.cli._options import registry_option
from ftkit.cli._output import Output


def ui_command(
    registry: Path | None = registry_option(),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; anything but loopback exposes the registry."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the app in the default browser."),
    max_upload_mb: int = typer.Option(
        200, "--max-upload-mb", min=1, help="Largest data file the page may upload (larger: give its path)."
    ),
) -> None:
    """Serve the local web UI: one-click fine-tuning jobs, live runs, compare and a playground."""
    from ftkit.registry.store import default_registry_path
    from ftkit.ui.serve import bind, require_web_stack, serve
    from ftkit.ui.settings import UiSettings, is_loopback

    out = Output()
    require_web_stack()
    root = (registry or default_registry_path()).expanduser().resolve()
    if root.exists() and not root.is_dir():
        from ftkit.errors import UsageError

        raise UsageError(f"--registry {root}: not a folder", hint="give the registry folder (or a new one)")
    sock = bind(host, port)
    settings = UiSettings(
        registry=root, host=host, port=sock.getsockname()[1], max_upload_bytes=max_upload_mb * 2**20
    )
    if not is_loopback(host):
        out.stderr.print(
            f"[yellow]warning:[/] listening on {escape(host)}: anyone who can reach this address can read every "
            "run, recipe, data path and sample in the registry and chat with its models; starting or stopping "
            "jobs still needs the token in the page. Use --host 127.0.0.1 to keep it to this machine."
        )
    out.stderr.print(f"ftkit ui: {escape(str(root))} at {escape(settings.url)} (Ctrl-C stops)")
    if open_browser:
        webbrowser.open(f"{settings.url}/runs")
    serve(settings, sock)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui_command)
