"""A real `mlflow server` for the tracking tests, started and stopped as the tracking benchmark does it
(benchmarks/tracking_overhead.py: SQLite backend store, a free 127.0.0.1 port, its process group killed at the end)."""

from __future__ import annotations

import subprocess

import pytest
from benchmarks.tracking_overhead import start_mlflow_server, stop_server

SERVERS: dict[
    str, subprocess.Popen
] = {}  # the mlflow_server fixture's processes by URI (a test may kill one)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` with a SQLite backend store on a free 127.0.0.1 port; yields its URI."""
    server, uri = start_mlflow_server(tmp_path / "mlflow-server")
    SERVERS[uri] = server
    yield uri
    SERVERS.pop(uri, None)
    stop_server(server)
