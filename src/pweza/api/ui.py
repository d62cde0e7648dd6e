"""The web UI at /ui: one HTML page and its hand-written ES modules and stylesheet (static/ui),
served by every manager replica on the API's own origin.

The files are public, as the API's documentation is: they hold no data. Every piece of data the
page shows comes from /api/v1 with the bearer token the user signed in with, so the UI is no way
around the API's authentication. The page's Content-Security-Policy allows scripts, styles and
requests from this origin only and no inline script at all: data the page renders as text cannot
become code even if a bug rendered it as markup.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.types import Scope

from pweza.api.docs import STATIC_DIR, DocsAssets

UI_DIR = STATIC_DIR / "ui"
UI_ASSETS = "/ui/static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class UiAssets(DocsAssets):
    path = UI_ASSETS + "/{path}"

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        # Revalidated each time (an ETag answers 304): a new package version shows at once.
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        return response


def install(app: FastAPI) -> None:
    """Serve /ui/ (the page), /ui/static/* (its modules) and send / and /ui to /ui/."""
    app.mount(UI_ASSETS, UiAssets(directory=UI_DIR), name="ui-assets")

    @app.get("/ui/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    # Relative, so that it holds behind a proxy that serves the manager under a prefix.
    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    async def to_page() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=307)
