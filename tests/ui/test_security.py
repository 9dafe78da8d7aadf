"""The server's request checks, against a real `ftkit ui` process: Host header (DNS rebinding), the write token,
the Origin of writes, path traversal in page and static URLs, and the browser-side headers."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.ui.conftest import stop_ui


def request(server, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """A raw HTTP request (no URL normalisation by the client: traversal strings reach the server as written)."""
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for key, value in {"Host": server.host, **(headers or {})}.items():
        connection.putheader(key, value)
    connection.putheader("Content-Length", str(len(body or b"")))
    connection.endheaders(body or b"")
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_pages_carry_the_token_and_safe_headers(ui_server):
    status, headers, body = request(ui_server, "GET", "/runs")
    assert status == 200 and ui_server.token.encode() in body
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]


def test_another_host_header_is_refused(ui_server):
    # a page at evil.example whose DNS name was rebound to 127.0.0.1 sends its own name as Host
    port = ui_server.host.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1"):
        status, _, body = request(ui_server, "GET", "/api/health", {"Host": host})
        assert status == 403, host
        assert "is not this server" in json.loads(body)["error"]
    status, _, _ = request(ui_server, "GET", "/api/health", {"Host": f"localhost:{port}"})
    assert status == 200


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "without this server's token"),
        ({"X-Ftkit-Token": "guess"}, "without this server's token"),
        ({"X-Ftkit-Token": "TOKEN", "Origin": "http://evil.example"}, "from another origin"),
    ],
)
def test_writes_need_the_token_and_the_same_origin(ui_server, headers, expected):
    headers = {key: value.replace("TOKEN", ui_server.token) for key, value in headers.items()}
    status, _, body = request(
        ui_server, "POST", "/api/health", {"Content-Type": "application/json", **headers}, b"{}"
    )
    assert status == 403
    assert expected in json.loads(body)["error"]


def test_a_write_with_the_token_from_the_page_passes_the_checks(ui_server):
    headers = {"X-Ftkit-Token": ui_server.token, "Origin": ui_server.url, "Content-Type": "application/json"}
    status, _, _ = request(ui_server, "POST", "/api/no-such-thing", headers, b"{}")
    assert status == 404  # past the checks: the API says what it does not have


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/pages/../../settings.py",
        "/static/..%2fsettings.py",
    ],
)
def test_static_files_never_leave_the_static_folder(ui_server, path):
    status, _, body = request(ui_server, "GET", path)
    assert status == 404
    assert b"root:" not in body and b"UiSettings" not in body


def test_a_traversal_run_url_is_only_the_page_shell(ui_server):
    status, headers, body = request(ui_server, "GET", "/runs/..%2f..%2fetc%2fpasswd")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"root:" not in body and b'<main id="page"' in body


def test_unknown_api_paths_are_json_404(ui_server):
    status, headers, body = request(ui_server, "GET", "/api/nothing/here")
    assert status == 404 and headers["content-type"] == "application/json"
    assert "no API at /api/nothing/here" in json.loads(body)["error"]


def test_the_state_file_is_removed_when_the_server_stops(ui_server):
    from ftkit.ui.settings import ui_home

    state = ui_home(ui_server.registry) / "server.json"
    assert json.loads(state.read_text())["pid"] == ui_server.process.pid
    stop_ui(ui_server)
    assert ui_server.process.returncode == 0
    assert not state.exists()
