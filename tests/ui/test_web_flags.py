"""`ftkit show RUN --web` and `ftkit diff A B --web`: the matching page's URL is printed and handed to the browser
(BROWSER is a script that records it, so no browser opens), on a server already serving the registry or on one
started in the background; the URL serves the page shell and the run's JSON. Runs are committed through the
registry API (no training)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ftkit.registry.store import RunRegistry
from ftkit.ui.settings import ui_home
from tests.registry.conftest import make_record
from tests.ui.conftest import start_ui, stop_ui

RECORDER = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"


@pytest.fixture
def two_runs(tmp_path):
    """A registry with runs A and B (B's learning rate differs), and a BROWSER command writing to opened.txt."""
    with RunRegistry.open(tmp_path / "registry") as registry:
        ids = []
        for lr in (1e-4, 2e-4):
            record = make_record(registry, lr=lr)
            registry.commit_run(record)
            ids.append(record.run_id)
    script = tmp_path / "browser.py"
    script.write_text(RECORDER)
    opened = tmp_path / "opened.txt"
    env = {**os.environ, "BROWSER": f"{sys.executable} {script} {opened} %s", "OMP_NUM_THREADS": "1"}
    return registry.root, ids, env, opened


def ftkit(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "ftkit", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done


def fetch(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["content-type"], response.read()


def test_show_web_starts_a_server_and_opens_the_run_page(two_runs):
    root, (a, _), env, opened = two_runs
    done = ftkit(env, "show", a, "--web", "--registry", str(root))
    url = done.stdout.strip()
    state = json.loads((ui_home(root) / "server.json").read_text())
    try:
        assert url == f"{state['url']}/runs/{a}"
        assert opened.read_text().splitlines() == [url]
        assert Path(state["registry"]) == root.resolve() and state["pid"] != os.getpid()
        kind, page = fetch(url)
        assert kind.startswith("text/html") and b'name="ftkit-token"' in page
        kind, body = fetch(f"{state['url']}/api/runs/{a}")
        assert kind == "application/json" and json.loads(body)["id"] == a
        # a second --web reuses the server it started
        again = ftkit(env, "show", a, "--web", "--json", "--registry", str(root))
        assert json.loads(again.stdout)["server"]["pid"] == state["pid"]
    finally:
        os.kill(state["pid"], signal.SIGTERM)
        for _ in range(100):
            if not (ui_home(root) / "server.json").exists():
                break
            time.sleep(0.1)


def test_diff_web_opens_compare_on_the_running_server(two_runs):
    root, (a, b), env, opened = two_runs
    server = start_ui(root)
    try:
        done = ftkit(env, "diff", "@latest~1", "@latest", "--web", "--registry", str(root))
        url = done.stdout.strip()
        assert url == f"{server.url}/compare?a={a}&b={b}"
        assert opened.read_text().splitlines() == [url]
        assert json.loads((ui_home(root) / "server.json").read_text())["pid"] == server.process.pid
        _, body = fetch(f"{server.url}/api/compare?a={a}&b={b}")
        assert [row["key"] for row in json.loads(body)["config"]] == ["training.learning_rate"]
    finally:
        stop_ui(server)
