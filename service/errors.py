"""Errors the service adds to builder's hierarchy: HTTP status codes and exit codes.

    EnvyardError (builder.errors)
    ├── ... builder's errors            422 (bad spec, bad lock, unsolvable)
    └── ServiceError                    exit 20
        ├── Invalid                     422  a request's value is out of range
        │   ├── BadName                 422  a namespace or environment name
        │   └── BadPins                 422  a Dask pin set
        ├── Unauthorized                401  no token, unknown token, expired token
        ├── Forbidden                   403  the token lacks the role; a write lacks its CSRF token
        ├── NotFound                    404
        ├── RequestTimeout              408  a request body came too slowly
        ├── Conflict                    409  e.g. cancelling a finished build
        │   ├── QuotaExceeded           409  the namespace's quota
        │   └── ArtifactConflict        409  different bytes already stored under a key
        ├── Gone                        410  e.g. a preview past its time
        ├── TooLarge                    413
        ├── StorageError                502  the artifact store failed or is misconfigured
        ├── Unavailable                 503  overloaded or the database is away: retry after
        ├── InsufficientStorage         507  the volume (or the database's disk) is full
        ├── HubError                         the embedded hub cannot start
        └── RemoteError                      the CLI: the service refused (its message)
            └── BuildFailed             exit 22

Anything else raised while serving is a bug: it is logged with its traceback and answered
as a JSON 500 that says so, never a plain-text page. ``exit_codes`` is the CLI's table.
"""

from __future__ import annotations

from envyard.builder.errors import EnvyardError
from envyard.builder.errors import exit_codes as _exit_codes


class ServiceError(EnvyardError):
    status = 400
    exit_code = 20
    meaning = "refused by the service (its message says why)"


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


class Gone(ServiceError):
    status = 410


class TooLarge(ServiceError):
    status = 413


class Unavailable(ServiceError):
    """Try again later; ``retry_after`` seconds is the hint sent as ``Retry-After``."""

    status = 503
    exit_code = 21
    meaning = "service error: unavailable or out of space (try again)"

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(ServiceError):
    status = 507
    exit_code = 21
    meaning = Unavailable.meaning


class BadName(Invalid):
    """A namespace or environment name outside the allowed form."""


class BadPins(Invalid):
    """A Dask pin set that cannot be read."""


class QuotaExceeded(Conflict):
    """The submission would take the namespace past its quota."""


class ArtifactConflict(Conflict):
    """Another writer stored different bytes under the same key first."""


class StorageError(ServiceError):
    """The artifact backend failed or is misconfigured."""

    status = 502


class HubError(ServiceError):
    """The embedded hub cannot start; the message says what is missing."""


class RemoteError(ServiceError):
    """The CLI's request was refused by the service; the message is the service's."""

    exit_code = 20


class BuildFailed(RemoteError):
    """The CLI waited for a build that ended failed or cancelled."""

    exit_code = 22
    meaning = "the build failed (or was cancelled)"


def http_status(exc: EnvyardError) -> int:
    """The status code for an error raised while serving a request."""
    return exc.status if isinstance(exc, ServiceError) else 422


def exit_codes() -> dict[int, str]:
    """Every exit code of the CLI and what it means (builder's and the service's)."""
    return _exit_codes(EnvyardError)


def exit_code_table() -> str:
    """The table as README.md and docs/architecture.md show it (a test keeps them so)."""
    rows = "".join(f"| {code} | {meaning} |\n" for code, meaning in exit_codes().items())
    return "| exit code | meaning |\n|---|---|\n" + rows
