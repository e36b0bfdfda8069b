"""Every error envyard raises on purpose, in one hierarchy.

    EnvyardError
    ├── SpecError           an environment file is malformed or breaks a policy
    ├── SolveError          no solution, or the solve ran out of time
    │   └── SolveTimeout
    ├── LockError           a lockfile is malformed, lacks a platform, or is foreign
    ├── FetchError          a package could not be fetched
    │   ├── HashMismatch    a package's bytes do not match the lock's sha256
    │   └── UnsafeURL       a URL escapes its channel, or is not one envyard opens
    ├── Stopped             the caller asked a long step to stop (a cancel)
    ├── InstallError        linking a prefix failed (nothing is left at the target)
    ├── PackError           conda-pack could not pack the prefix
    ├── ChannelError        the demo channel could not be built
    ├── DaskMismatch        a lock differs from the Dask cluster's pins
    └── ImageError          an OCI image could not be built, pulled or pushed

Callers (the CLI, later the service) catch ``EnvyardError`` and show ``str(err)``;
anything else is a bug. The CLI exits with ``exit_code``: 0 success, 1 internal error,
2 usage error, 10 spec, 11 solve, 12 lock, 13 fetch or hash, 14 install, 15 pack, 16 channel,
17 Dask pin mismatch, 18 image.
"""

from __future__ import annotations


class EnvyardError(Exception):
    """Root of the hierarchy; ``exit_code`` is what the CLI returns for it."""

    exit_code = 1


class SpecError(EnvyardError):
    """An environment file is malformed or breaks a policy."""

    exit_code = 10

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = source
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


class SolveError(EnvyardError):
    """The specs have no solution on the given channels and platform."""

    exit_code = 11


class SolveTimeout(SolveError):
    """The solve did not finish within its time limit."""


class LockError(EnvyardError):
    """A lockfile is malformed, lacks a platform, or cannot be read."""

    exit_code = 12


class FetchError(EnvyardError):
    """A package could not be fetched from its URL."""

    exit_code = 13


class HashMismatch(FetchError):
    """A package's bytes do not match the sha256 recorded in the lock."""


class UnsafeURL(FetchError):
    """A URL has dot segments, encoded separators, a foreign scheme, or lies outside the
    channels allowed; it is refused before anything is opened."""


class Stopped(EnvyardError):
    """The caller asked a long step (a download) to stop; nothing was left behind."""

    exit_code = 130


class InstallError(EnvyardError):
    """Linking a prefix failed; the target was left untouched."""

    exit_code = 14


class PackError(EnvyardError):
    """conda-pack could not pack the prefix."""

    exit_code = 15


class ChannelError(EnvyardError):
    """The demo channel could not be built."""

    exit_code = 16


class DaskMismatch(EnvyardError):
    """A required package differs from the Dask cluster's pins (the policy blocks it)."""

    exit_code = 17


class ImageError(EnvyardError):
    """An OCI image could not be built, pulled or pushed (the environment is unaffected)."""

    exit_code = 18
