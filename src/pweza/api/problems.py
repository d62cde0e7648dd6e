"""Every error leaves as RFC 9457 `application/problem+json`, naming the field when there is one."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from pweza.domain.errors import PwezaError
from pweza.domain.kinds import format_location

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"


class Problem(BaseModel):
    """What every error response carries (RFC 9457), for the OpenAPI document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = Field(default=None, description="the path of the field at fault, when there is one")


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}


_WHY: dict[int, str] = {
    401: "no token, or an invalid or revoked one (checked before the body is read)",
    403: "the token's role may not do this",
    404: "what the path (or the body) names does not exist",
    409: "the request conflicts with the current state (it exists already, it has finished, ...)",
    413: "the request body, or an input in it, is over the limit",
    422: "invalid input: `field` names the field and `detail` says what is allowed",
    503: "the manager cannot reach its database just now; try again",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these problem statuses."""
    return {status: _documented(_WHY[status]) for status in statuses}


# The errors any /api/v1 route may answer, as the route class documents them (it adds 404 to a
# route with a path parameter and keeps 413 for routes that read a body).
RESPONSES: dict[int | str, dict[str, Any]] = responses(401, 403, 413, 422, 503)


def problem(status: int, title: str, detail: str, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if field:
        body["field"] = field
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(PwezaError)
    async def pweza_error(_: Request, error: PwezaError) -> JSONResponse:
        return problem(error.status, error.title, error.detail, error.field)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        first = errors[0]
        loc = tuple(first.get("loc", ()))
        # 'body' / 'query' say where the field was sent; the rest is the field's path.
        path = format_location(loc[1:]) if len(loc) > 1 else format_location(loc)
        detail = f"{path}: {first.get('msg', 'invalid')}".removeprefix(": ")
        detail = detail.replace("Value error, ", "")
        return problem(422, "Invalid input", detail, path or None, where=str(loc[0]) if loc else None)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return problem(error.status_code, HTTPStatus(error.status_code).phrase, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", error_type=type(error).__name__)
        return problem(500, "Internal error", "the manager hit an unexpected error; see its log")
