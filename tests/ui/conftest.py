"""Fixtures for the UI tests: a real `ftkit ui` server process on a free 127.0.0.1 port, and its page token."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftkit.ui.settings import ui_home


@dataclass
class UiServer:
    """A running `ftkit ui`: its base URL, the token its page carries, the registry and the process."""

    url: str
    token: str
    registry: Path
    process: subprocess.Popen

    @property
    def host(self) -> str:
        return self.url.split("//", 1)[1]


def page_token(url: str) -> str:
    """The write token the served page carries (as the browser reads it)."""
    with urllib.request.urlopen(f"{url}/runs", timeout=10) as response:
        page = response.read().decode()
    return re.search(r'<meta name="ftkit-token" content="([^"]+)">', page).group(1)


def start_ui(registry: Path, *extra: str, env: dict | None = None, cwd: Path | None = None) -> UiServer:
    """Start `ftkit ui --port 0` on `registry` (in folder `cwd`, default this one) and wait (≤ 60 s) until it
    answers."""
    state = ui_home(registry) / "server.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "ftkit", "ui", "--registry", str(registry), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        cwd=cwd,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ftkit ui exited {process.returncode}: {process.stderr.read()}")
        try:
            info = json.loads(state.read_text())
            if info["pid"] == process.pid:
                return UiServer(info["url"], page_token(info["url"]), registry, process)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("ftkit ui did not start within 60 s")


def stop_ui(server: UiServer) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def ui_server(tmp_path) -> Iterator[UiServer]:
    """A server on an empty registry folder under tmp_path."""
    server = start_ui(tmp_path / "registry")
    yield server
    stop_ui(server)
