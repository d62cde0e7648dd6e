"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served from the copies of
their scripts installed with the package (static/, see hack/vendor-docs-assets.sh): FastAPI's own
pages load them from a CDN and show nothing without one.

Each page says with a Content-Security-Policy that it loads nothing from anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/docs-assets"
# The files only change with the package, which is a new version: a day of caching is safe.
_ASSET_HEADERS = {"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class DocsAssets(StaticFiles):
    """The static files, with caching allowed and no type sniffing."""

    # The request metrics label a request with its route's path template, and a mount is no
    # route: this one stands in for it, so asset requests are not counted as 'unmatched'.
    path = ASSETS_PATH + "/{path}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await super().__call__(scope, receive, send)

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_ASSET_HEADERS)
        return response


def content_security_policy(html: str) -> str:
    """What the page may load: its own origin only, plus the page's own inline scripts by hash
    (Swagger UI is started by one), not any inline script an attacker might get in."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *hashes]),
            # Both UIs set style attributes and add <style> elements as they render.
            "style-src 'self' 'unsafe-inline'",
            # Swagger UI's icons are data: URIs.
            "img-src 'self' data:",
            "font-src 'self' data:",
            # The OpenAPI document, and Swagger UI's "Try it out" requests.
            "connect-src 'self'",
            # ReDoc builds its search index in a worker it makes from a blob.
            "worker-src blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _guarded(page: HTMLResponse) -> HTMLResponse:
    html = bytes(page.body).decode()
    page.headers["content-security-policy"] = content_security_policy(html)
    page.headers["x-content-type-options"] = "nosniff"
    page.headers["referrer-policy"] = "no-referrer"
    return page


def install(app: FastAPI) -> None:
    """Serve the assets and the two pages (create the app with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS_PATH, DocsAssets(directory=STATIC_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        assets = root + ASSETS_PATH
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{assets}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url=None,
            # Swagger UI would otherwise show a badge fetched from a public validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _guarded(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        assets = root + ASSETS_PATH
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/swagger-ui/favicon-32x32.png",  # ReDoc ships none
            with_google_fonts=False,
        )
        return _guarded(page)
