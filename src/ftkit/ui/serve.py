"""Serving the UI: binding the socket, the server's state file, and finding a running server for `--web`.

`<ui home>/server.json` (pid, url, host, port, registry, started_at) is written once the socket is bound and
removed when the server stops; `running_server` trusts it only while that pid is alive and `/api/health` at its URL
names the same registry.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftkit.errors import FtkitError, UsageError
from ftkit.ui.settings import UiSettings, ui_home

STATE_FILE = "server.json"


def require_web_stack() -> None:
    """Raise FtkitError (exit 2) with the install hint when the `ftkit[ui]` extra is missing."""
    missing = []
    for module in ("starlette", "uvicorn", "multipart"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise FtkitError(
            f"ftkit ui needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed",
            hint="pip install 'ftkit[ui]'",
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one). A port in use is a UsageError (exit 2)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"--port {port}: the port is in use on {host}",
                hint="give another one with --port N, or --port 0 for any free port",
            ) from error
        raise UsageError(
            f"--host {host}: cannot listen there ({error.strerror})", hint="--host 127.0.0.1"
        ) from error
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def write_state(settings: UiSettings) -> Path:
    """Record the running server for `ftkit show --web` (atomic replace)."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "url": settings.url,
        "host": settings.host,
        "port": settings.port,
        "registry": str(settings.registry),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = home / STATE_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def clear_state(settings: UiSettings) -> None:
    """Remove the state file if it is still this process's."""
    path = settings.home / STATE_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def running_server(registry: Path) -> dict[str, Any] | None:
    """The state of a live `ftkit ui` serving `registry`, or None."""
    path = ui_home(registry) / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with urllib.request.urlopen(f"{state['url']}/api/health", timeout=2) as response:  # noqa: S310 - local
            health = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return state if Path(health.get("registry", "")) == registry else None


def serve(settings: UiSettings, sock: socket.socket) -> None:
    """Run the server on the bound socket until Ctrl-C or SIGTERM; either is a normal end (the state file goes)."""
    import uvicorn

    from ftkit.ui.app import create_app

    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    write_state(settings)

    def stop(
        _signum: int, _frame: Any
    ) -> None:  # uvicorn re-raises the signal it caught once it has shut down
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        clear_state(settings)
