"""A small REST client for the CLI that turns transport failures into sentences.

It speaks HTTP with the standard library's http.client: httpx takes longer to import than
the whole rest of a `pweza get`, and the CLI needs no more than one keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from pweza.cli.context import Context


class CliError(Exception):
    """A failure to show the user as one line, with exit code 1 (2 for usage problems)."""

    def __init__(self, message: str, code: int = 1, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status  # the HTTP status, when the manager refused


class ApiClient:
    def __init__(self, context: Context, timeout: float = 30.0) -> None:
        self.context = context
        self.timeout = timeout
        parts = urlsplit(context.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"manager URL {context.url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]", code=2)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": "pweza-cli"}
        if context.token:
            self._headers["Authorization"] = f"Bearer {context.token}"
        self._connection: http.client.HTTPConnection | None = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._tls:
                import ssl

                import certifi  # the CA bundle httpx trusts too, so https managers verify as before

                context = ssl.create_default_context(cafile=certifi.where())
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=context
                )
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return self._connection

    def _send(self, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        # A kept-alive connection the server has since closed fails on first use: one fresh retry.
        for attempt in (1, 2):
            reused = self._connection is not None
            connection = self._connect()
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.__exit__()
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def lines(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[str]:
        """A text response line by line as it arrives (a followed log); no timeout while it streams."""
        target = self._target(path, params)
        connection = self._connect()
        try:
            connection.request("GET", target, headers={**self._headers, "Accept": "text/plain"})
            response = connection.getresponse()
            if response.status >= 400:
                raise self._refusal(response.status, response.read())
            if connection.sock is not None:
                connection.sock.settimeout(None)
            while raw := response.readline():
                yield raw.decode(errors="replace").rstrip("\n")
        except (TimeoutError, OSError, http.client.HTTPException):
            raise self._unreachable() from None
        finally:
            self.__exit__()

    def _target(self, path: str, params: dict[str, Any] | None) -> str:
        target = self._prefix + path
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        return target + ("?" + urlencode(query) if query else "")

    def _unreachable(self) -> CliError:
        return CliError(
            f"cannot reach the manager at {self.context.url}: start it with 'pweza up' "
            "or point PWEZA_URL / --server at a running one"
        )

    def _refusal(self, status: int, content: bytes) -> CliError:
        if status == 401:
            hint = "no token found" if not self.context.token else "the token was rejected (wrong or revoked)"
            return CliError(f"{hint}: pass --token, set PWEZA_TOKEN, or run 'pweza up' to create one", status=status)
        return CliError(_problem_text(status, content), status=status)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        target = self._target(path, params)
        headers = dict(self._headers)
        body = None
        if json is not None:
            body = _dumps(json)
            headers["Content-Type"] = "application/json"
        try:
            status, content = self._send(method, target, body, headers)
        except TimeoutError:
            self.__exit__()
            raise CliError(f"the manager at {self.context.url} did not answer in time") from None
        except (OSError, http.client.HTTPException):
            self.__exit__()
            raise self._unreachable() from None
        if status >= 400:
            raise self._refusal(status, content)
        if status == 204 or not content:
            return None
        return _loads(content)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


def _loads(content: bytes) -> Any:
    return json.loads(content)


def _problem_text(status: int, content: bytes) -> str:
    try:
        body = _loads(content)
    except ValueError:
        return f"HTTP {status}: {content[:200].decode(errors='replace')}"
    if isinstance(body, dict) and "detail" in body:
        return f"{body.get('title', 'error')} ({status}): {body['detail']}"
    return f"HTTP {status}: {body}"
