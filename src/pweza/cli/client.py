"""A small REST client for the CLI that turns transport failures into sentences."""

from __future__ import annotations

from typing import Any

import httpx

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
        headers = {"Authorization": f"Bearer {context.token}"} if context.token else {}
        # Loading the CA bundle costs a tenth of a second; a plain-HTTP manager never needs it
        # (requests go only to paths under base_url, and redirects are not followed).
        verify = context.url.startswith("https://")
        self._http = httpx.Client(base_url=context.url, headers=headers, timeout=timeout, verify=verify)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CliError(
                f"cannot reach the manager at {self.context.url}: start it with 'pweza up' "
                "or point PWEZA_URL / --server at a running one"
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"the manager at {self.context.url} did not answer in time") from None
        if response.status_code == 401:
            hint = "no token found" if not self.context.token else "the token was rejected (wrong or revoked)"
            raise CliError(f"{hint}: pass --token, set PWEZA_TOKEN, or run 'pweza up' to create one")
        if response.status_code >= 400:
            raise CliError(_problem_text(response), status=response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and "detail" in body:
        return f"{body.get('title', 'error')} ({response.status_code}): {body['detail']}"
    return f"HTTP {response.status_code}: {body}"
