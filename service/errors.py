"""Errors the service adds to builder's hierarchy, and their HTTP status codes.

    EnvyardError (builder.errors)
    ├── ... builder's errors            422 (bad spec, bad lock, unsolvable)
    └── ServiceError
        ├── Invalid                     422  a request's value is out of range
        ├── Unauthorized                401  no token, unknown token, expired token
        ├── Forbidden                   403  the token lacks the role; a write lacks its CSRF token
        ├── NotFound                    404
        ├── RequestTimeout              408  a request body came too slowly
        ├── Conflict                    409  e.g. cancelling a finished build
        ├── TooLarge                    413
        ├── Unavailable                 503  overloaded or the database is away: retry after
        └── InsufficientStorage         507  the volume (or the database's disk) is full

Anything else raised while serving is a bug: it is logged with its traceback and answered
as a JSON 500 that says so, never a plain-text page.
"""

from __future__ import annotations

from builder.errors import EnvyardError


class ServiceError(EnvyardError):
    status = 400
    exit_code = 20


class Invalid(ServiceError):
    status = 422


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class RequestTimeout(ServiceError):
    status = 408


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class Unavailable(ServiceError):
    """Try again later; ``retry_after`` seconds is the hint sent as ``Retry-After``."""

    status = 503
    exit_code = 21

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(ServiceError):
    status = 507
    exit_code = 21


def http_status(exc: EnvyardError) -> int:
    """The status code for an error raised while serving a request."""
    return exc.status if isinstance(exc, ServiceError) else 422
