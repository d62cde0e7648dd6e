"""The route class of every /api/v1 route: token first, then the body.

FastAPI reads and validates a route's body before it solves the route's dependencies, so the
token check (a dependency, which is what OpenAPI shows) would come after a stranger's body had
been read and judged. This route runs that same check first, then refuses JSON the store could
not keep, and only then hands the request to FastAPI.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from pweza.api import problems
from pweza.api.jsonbody import check_body
from pweza.api.security import Require


def required_check(dependant: Dependant) -> Require | None:
    """The route's `Require` dependency, wherever it sits among the dependencies."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Require):
            return dependency.call
        found = required_check(dependency)
        if found is not None:
            return found
    return None


class GuardedRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        named = problems.responses(404) if "{" in path else {}
        kwargs["responses"] = {**problems.RESPONSES, **named, **(kwargs.get("responses") or {})}
        # The bodies are dicts with every key the route means to send: one left out stays out.
        kwargs["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is None:
            self.responses.pop(413)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        check = required_check(self.dependant)
        if check is None:
            raise TypeError(f"route {self.path} declares no Reader, Writer or Admin parameter")
        reads_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            await check.authorize(request)
            if reads_body:
                check_body(await request.body())
            return await handle(request)

        return guarded
