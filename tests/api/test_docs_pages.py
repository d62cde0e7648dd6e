"""/docs and /redoc work offline: every script, style and icon they load comes from the manager
itself, and the OpenAPI document they show has the bearer scheme behind the Authorize button."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from pweza.testing.platform import Platform

pytestmark = pytest.mark.timeout(120)

EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class LoadedUrls(HTMLParser):
    """The URLs a browser would load for a page (src= and href=), and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href", "spec-url"):
            if found.get(name):
                self.urls.append(str(found[name]))
        self._in_inline_script = tag == "script" and "src" not in found

    def handle_endtag(self, tag: str) -> None:
        self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts.append(data)


@pytest.fixture
def anonymous(live: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, verify=live.verify, timeout=10.0) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_only_assets_the_manager_serves(anonymous: httpx.Client, page: str) -> None:
    response = anonymous.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = LoadedUrls()
    parser.feed(response.text)
    # Swagger UI names the OpenAPI document in its inline start-up script, ReDoc in spec-url.
    for script in parser.inline_scripts:
        parser.urls += re.findall(r"url: '([^']+)'", script)
    assets = [url for url in parser.urls if not url.endswith("/openapi.json")]
    assert len(assets) >= 2, parser.urls
    assert "/openapi.json" in parser.urls
    assert "http:" not in response.text and "https:" not in response.text
    for url in parser.urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not on the manager's origin"
        loaded = anonymous.get(url)
        assert loaded.status_code == 200, url
        suffix = url[url.rfind(".") :]
        expected = EXPECTED_TYPES.get(suffix, "application/json")
        assert expected in loaded.headers["content-type"], (url, loaded.headers["content-type"])
        assert len(loaded.content) > 100, url


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_policy_allows_its_own_scripts_and_no_other_origin(anonymous: httpx.Client, page: str) -> None:
    response = anonymous.get(page)
    directives = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert directives["default-src"] == "'none'"
    sources = " ".join(directives.values())
    assert "http" not in sources and "*" not in sources and "'unsafe-eval'" not in sources
    script_sources = directives["script-src"].split()
    assert "'self'" in script_sources and "'unsafe-inline'" not in script_sources
    parser = LoadedUrls()
    parser.feed(response.text)
    for script in parser.inline_scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_sources, "the browser would refuse the page's own start-up script"
    assert directives["connect-src"] == "'self'"
    assert "blob:" in directives["worker-src"]  # ReDoc's search worker


def test_an_asset_that_is_not_there_is_a_404_problem(anonymous: httpx.Client) -> None:
    for path in ("/docs-assets/swagger-ui/nothing.js", "/docs-assets/../app.py", "/docs-assets/%2e%2e/app.py"):
        response = anonymous.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


def test_asset_requests_are_counted_under_one_route_template(live: Platform, anonymous: httpx.Client) -> None:
    assert anonymous.get("/docs-assets/redoc/LICENSE").status_code == 200
    scraped = httpx.get(f"http://127.0.0.1:{live.metrics_port}/metrics", timeout=10.0).text
    assert 'route="/docs-assets/{path}",status="200"' in scraped
    assert "redoc/LICENSE" not in scraped


def test_the_licences_of_the_bundled_ui_are_served_with_them(anonymous: httpx.Client) -> None:
    assert "Apache License" in anonymous.get("/docs-assets/swagger-ui/LICENSE").text
    assert "SmartBear" in anonymous.get("/docs-assets/swagger-ui/NOTICE").text
    assert "MIT License" in anonymous.get("/docs-assets/redoc/LICENSE").text


def test_every_api_route_declares_the_bearer_scheme(anonymous: httpx.Client) -> None:
    document = anonymous.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    bearer = [name for name, scheme in schemes.items() if scheme == {**scheme, "type": "http", "scheme": "bearer"}]
    assert len(bearer) == 1, schemes
    operations = [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    api = [(method, path, op) for method, path, op in operations if path.startswith("/api/v1/")]
    assert len(api) > 20
    missing = [f"{method} {path}" for method, path, op in api if {bearer[0]: []} not in op.get("security", [])]
    assert missing == []
    open_routes = [path for method, path, op in operations if not path.startswith("/api/")]
    assert open_routes and all("security" not in op for _, path, op in operations if path in open_routes)
