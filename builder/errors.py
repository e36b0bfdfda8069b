"""Every error envyard raises on purpose, in one hierarchy, and the CLI's exit codes.

    EnvyardError
    ├── UsageError          a command line envyard cannot read
    ├── ConfigError         a setting is malformed (named, with the form it expects)
    ├── SpecError           an environment file (or a match spec) is malformed or breaks a policy
    ├── SolveError          no solution, or the solve ran out of time
    │   └── SolveTimeout
    ├── LockError           a lockfile is malformed, lacks a platform, or is foreign
    ├── FetchError          a package or a channel's index could not be fetched
    │   ├── IndexUnreachable  a channel's package index cannot be read
    │   ├── HashMismatch    a package's bytes do not match the lock's sha256
    │   └── UnsafeURL       a URL escapes its channel, or is not one envyard opens
    ├── Stopped             the caller asked a long step to stop (a cancel)
    ├── InstallError        linking a prefix failed (nothing is left at the target)
    ├── PackError           conda-pack could not pack the prefix
    ├── ChannelError        the demo channel could not be built
    ├── DaskMismatch        a lock differs from the Dask cluster's pins
    ├── ImageError          an OCI image could not be built, pulled or pushed
    └── ServiceError        (``service.errors``: what the service refuses, and why)

Callers (the CLI, the service) catch ``EnvyardError`` and show ``str(err)``; anything
else is a bug. The CLI exits with the class's ``exit_code``; ``exit_codes`` is the one
table of them (``service.errors.exit_codes`` adds the service's), printed by
``envyard --help``, the README and docs/architecture.md alike.
"""

from __future__ import annotations


class EnvyardError(Exception):
    """Root of the hierarchy; ``exit_code`` is what the CLI returns for it, ``meaning``
    what the exit code says in the table."""

    exit_code = 1
    meaning = "internal error (a bug: please report it)"


class UsageError(EnvyardError):
    """A command line envyard cannot read (argparse's own mistakes exit 2 as well)."""

    exit_code = 2
    meaning = "usage: the command line is wrong"


class ConfigError(EnvyardError):
    """A setting (``ENVYARD_*`` or the ``ENVYARD_CONFIG`` file) is malformed."""

    exit_code = 3
    meaning = "configuration: a setting is malformed"


class SpecError(EnvyardError):
    """An environment file is malformed or breaks a policy."""

    exit_code = 10
    meaning = "bad spec: an environment file or match spec is malformed or refused"

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
    meaning = "unsolvable: no solution, or the solve ran out of time"


class SolveTimeout(SolveError):
    """The solve did not finish within its time limit."""


class LockError(EnvyardError):
    """A lockfile is malformed, lacks a platform, or cannot be read."""

    exit_code = 12
    meaning = "bad lock: malformed, without the platform, or refused"


class FetchError(EnvyardError):
    """A package could not be fetched from its URL."""

    exit_code = 13
    meaning = "fetch: a package or channel index could not be fetched, or its hash differs"


class IndexUnreachable(FetchError):
    """A channel's package index (repodata) could not be read: a network or server
    failure, not a property of the specs."""


class HashMismatch(FetchError):
    """A package's bytes do not match the sha256 recorded in the lock."""


class UnsafeURL(FetchError):
    """A URL has dot segments, encoded separators, a foreign scheme, or lies outside the
    channels allowed; it is refused before anything is opened."""


class Stopped(EnvyardError):
    """The caller asked a long step (a download) to stop; nothing was left behind."""

    exit_code = 130
    meaning = "stopped: interrupted or cancelled"


class InstallError(EnvyardError):
    """Linking a prefix failed; the target was left untouched."""

    exit_code = 14
    meaning = "install: linking the prefix failed"


class PackError(EnvyardError):
    """conda-pack could not pack the prefix."""

    exit_code = 15
    meaning = "pack: the prefix could not be packed"


class ChannelError(EnvyardError):
    """The demo channel could not be built."""

    exit_code = 16
    meaning = "demo channel: it could not be built"


class DaskMismatch(EnvyardError):
    """A required package differs from the Dask cluster's pins (the policy blocks it)."""

    exit_code = 17
    meaning = "Dask: the lock differs from the cluster's pins"


class ImageError(EnvyardError):
    """An OCI image could not be built, pulled or pushed (the environment is unaffected)."""

    exit_code = 18
    meaning = "image: an OCI image could not be built, pulled or pushed"


def exit_codes(root: type[EnvyardError] = EnvyardError) -> dict[int, str]:
    """Exit code -> meaning, for every class under ``root`` that sets its own code."""
    table = {0: "success"}
    todo: list[type[EnvyardError]] = [root]
    while todo:
        cls = todo.pop()
        if "exit_code" in vars(cls):
            table.setdefault(cls.exit_code, cls.meaning)
        todo.extend(cls.__subclasses__())
    return dict(sorted(table.items()))
