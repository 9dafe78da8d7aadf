"""The Starlette application of `ftkit ui`: the page shell, the static files and the JSON API.

Every page URL (/, /runs, /runs/<id>, /compare, /new, /playground) answers with the shell
`static/index.html`, which carries the server's write token in a meta tag; the shell's script draws the page from
`/api/...`. The API lives in the modules named by API_MODULES, each exposing `routes() -> list[Route]`; a route
reads the server's settings from `request.app.state.settings`. An FtkitError raised by a route becomes a JSON
error (`error`, `hint`, `problems`) with 400 for bad input and 404 for what does not exist; anything else is a 500
without a traceback (FTKIT_DEBUG=1 prints it on the server's stderr).
"""

from __future__ import annotations

import html
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ftkit import __version__
from ftkit.errors import ExitCode, FtkitError
from ftkit.ui.errors import NotFound
from ftkit.ui.security import SecurityMiddleware
from ftkit.ui.settings import UiSettings

STATIC = Path(__file__).parent / "static"
PAGES = ("/runs", "/runs/{rest:path}", "/compare", "/new", "/playground")
API_MODULES: tuple[str, ...] = ("ftkit.ui.api_runs", "ftkit.ui.api_chat", "ftkit.ui.api_jobs")


def error_response(error: FtkitError) -> JSONResponse:
    """An FtkitError as the API's JSON error: 404 for NotFound, 400 for other bad input, else 500."""
    status = 404 if isinstance(error, NotFound) else 400 if error.exit_code == ExitCode.BAD_INPUT else 500
    body = {"error": str(error), "hint": error.hint, "problems": list(error.problems or [])}
    return JSONResponse(body, status_code=status)


def create_app(settings: UiSettings) -> Any:
    """The ASGI application serving `settings.registry` (wrapped in the security checks)."""
    shell = (STATIC / "index.html").read_text(encoding="utf-8")

    async def page(request: Request) -> Response:
        body = shell.replace("{{TOKEN}}", html.escape(settings.token)).replace("{{VERSION}}", __version__)
        return HTMLResponse(body, headers={"cache-control": "no-store"})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__, "registry": str(settings.registry)})

    async def unknown_api(request: Request) -> Response:
        return JSONResponse(
            {"error": f"no API at {request.url.path}", "hint": "see /api/health"}, status_code=404
        )

    routes: list[Any] = [
        Route("/", lambda request: RedirectResponse("/runs")),
        *(Route(path, page) for path in PAGES),
        Route("/api/health", health),
    ]
    for name in API_MODULES:
        routes.extend(importlib.import_module(name).routes())
    routes += [
        Route("/api/{rest:path}", unknown_api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def ftkit_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, FtkitError)
        return error_response(error)

    async def server_error(request: Request, error: Exception) -> Response:
        if os.environ.get("FTKIT_DEBUG") == "1":
            traceback.print_exception(error, file=sys.stderr)
        return JSONResponse(
            {
                "error": f"internal error: {type(error).__name__}: {error}",
                "hint": "FTKIT_DEBUG=1 shows the traceback",
            },
            status_code=500,
        )

    app = Starlette(routes=routes, exception_handlers={FtkitError: ftkit_error, Exception: server_error})
    app.state.settings = settings
    return SecurityMiddleware(app, settings)
