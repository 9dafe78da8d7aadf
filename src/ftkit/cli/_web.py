"""`--web` of `ftkit show` and `ftkit diff`: open the matching page of `ftkit ui` for the registry.

A server already serving that registry (its `server.json`, ftkit/ui/serve.py) is reused; otherwise
`ftkit ui --port 0` starts in the background, detached in its own session (it outlives this command; Ctrl-C here
does not stop it), with its output in `<ui home>/server.log`, and this command waits for its `server.json`. The URL
is printed (with --json: `{"url", "server"}`) and opened with `webbrowser` (which honours BROWSER).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import webbrowser
from pathlib import Path
from typing import Any

from ftkit.errors import FtkitError

START_TIMEOUT_S = 60.0


def start_server(registry_root: Path) -> dict[str, Any]:
    """Start `ftkit ui --registry ROOT --port 0` detached and return its server.json once it is serving."""
    from ftkit.ui.serve import STATE_FILE, running_server
    from ftkit.ui.settings import ui_home

    home = ui_home(registry_root)
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ftkit", "ui", "--registry", str(registry_root), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not in this terminal's process group: it keeps serving after we exit
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise FtkitError(
                f"`ftkit ui` exited with code {process.returncode} before serving {registry_root}",
                problems=tail,
                hint=f"run `ftkit ui --registry {registry_root}` to see why (its log: {log_path})",
            )
        try:
            state = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        if isinstance(state, dict) and state.get("pid") == process.pid:
            found = running_server(registry_root)
            if found is not None:
                return found
        time.sleep(0.1)
    process.terminate()
    raise FtkitError(
        f"`ftkit ui` did not start serving {registry_root} within {START_TIMEOUT_S:.0f} s",
        hint=f"start it yourself: `ftkit ui --registry {registry_root}` (its log: {log_path})",
    )


def open_page(out: Any, registry_root: Path, path: str) -> str:
    """Open `path` (e.g. `/runs/<id>`) of the UI serving `registry_root`, starting one if none runs; print the URL
    and return it."""
    from ftkit.ui.serve import require_web_stack, running_server

    require_web_stack()
    root = Path(registry_root).resolve()
    state = running_server(root)
    if state is None:
        out.stderr.print(f"starting `ftkit ui` for {root} in the background", markup=False, highlight=False)
        state = start_server(root)
    url = f"{state['url']}{path}"
    webbrowser.open(url)
    out.emit({"url": url, "server": state})
    out.print(url, markup=False, highlight=False, soft_wrap=True)  # whole, never cut at the terminal's width
    return url
