"""Errors the service adds to builder's hierarchy, and their HTTP status codes.

    EnvyardError (builder.errors)
    ├── ... builder's errors            422 (bad spec, bad lock, unsolvable)
    └── ServiceError
        ├── Unauthorized                401  no token, unknown token, expired token
        ├── Forbidden                   403  the token lacks the role on the namespace
        ├── NotFound                    404
        ├── Conflict                    409  e.g. cancelling a finished build
        └── TooLarge                    413
"""

from __future__ import annotations

from builder.errors import EnvyardError


class ServiceError(EnvyardError):
    status = 400
    exit_code = 20


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


def http_status(exc: EnvyardError) -> int:
    """The status code for an error raised while serving a request."""
    return exc.status if isinstance(exc, ServiceError) else 422
