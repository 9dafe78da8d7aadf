"""Checks every request passes before it reaches a route.

- Host: on a loopback bind, the Host header must name this server (127.0.0.1, localhost or ::1 with its port), so
  a web page whose DNS name was rebound to 127.0.0.1 gets 403 (DNS rebinding).
- Writes (any method but GET, HEAD, OPTIONS) must carry the server's token in the `X-Ftkit-Token` header: the page
  reads it from its own HTML, which another origin cannot read; a cross-site form cannot set a header, and a
  cross-site fetch that sets one is stopped by the browser's preflight (no CORS headers are ever sent).
- Writes whose Origin header names another origin are refused even with the token.
- Responses carry `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and a Content-Security-Policy that
  allows only this server's own scripts and styles (no inline script runs, so escaped-or-not text cannot execute).
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.responses import JSONResponse

from ftkit.ui.settings import UiSettings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
TOKEN_HEADER = "x-ftkit-token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
]


def refusal(status: int, message: str, hint: str) -> JSONResponse:
    """The JSON body every refused request gets."""
    return JSONResponse({"error": message, "hint": hint}, status_code=status)


class SecurityMiddleware:
    """ASGI middleware applying the module's checks (see its docstring)."""

    def __init__(self, app: Any, settings: UiSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        problem = self.check(scope["method"], headers)
        if problem is not None:
            await problem(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def check(self, method: str, headers: dict[str, str]) -> JSONResponse | None:
        """The refusal for a request, or None when it may pass."""
        allowed = self.settings.allowed_hosts()
        host = headers.get("host", "")
        if allowed is not None and host not in allowed:
            return refusal(403, f"Host {host!r} is not this server", f"open {self.settings.url}")
        if method in SAFE_METHODS:
            return None
        token = headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.settings.token.encode()):
            return refusal(
                403,
                "a write request without this server's token",
                "start jobs from the page the server serves (it carries the token)",
            )
        origin = headers.get("origin")
        if origin is not None and origin not in {f"http://{host}", f"https://{host}"}:
            return refusal(
                403, f"a write request from another origin ({origin!r})", "use the server's own page"
            )
        return None
