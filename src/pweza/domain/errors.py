"""Errors the service layer raises and every transport maps to a response."""

from __future__ import annotations


class PwezaError(Exception):
    """Base of the errors a user can act on."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(PwezaError):
    status = 422
    title = "Invalid input"


class NotFound(PwezaError):
    status = 404
    title = "Not found"


class Conflict(PwezaError):
    status = 409
    title = "Conflict"


class Unauthenticated(PwezaError):
    status = 401
    title = "Unauthenticated"


class Forbidden(PwezaError):
    status = 403
    title = "Forbidden"


class PayloadTooLarge(PwezaError):
    status = 413
    title = "Payload too large"


class Unavailable(PwezaError):
    status = 503
    title = "Service unavailable"
