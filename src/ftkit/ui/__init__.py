"""`ftkit ui`: a local web app over the run registry (Starlette served by uvicorn, the `ftkit[ui]` extra).

Modules: settings (where the UI keeps its files, the per-server token), security (Host, token and Origin checks
on every request), app (the Starlette application: pages, static files, the JSON API modules). Every page is the
one shell `static/index.html`, whose script renders the page from the JSON under `/api/...`; the API reads and
writes through the registry's public API and the same runner `ftkit tune` and `ftkit run` use.
"""
