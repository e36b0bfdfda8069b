"""What the service accepts from users: submitted specs and pushed locks, checked at the
door (before anything is stored) and again where they are used (the build), because a
row in the database is only as trustworthy as the request that wrote it.

At the door the check runs in a child process (``UploadChecker``): parsing a hostile
64 MB lock is a few seconds of pure Python, which in a thread would hold the GIL against
the event loop (/healthz p99 150 ms), and a parser that crashed would take the service
with it. The child is told the rules as plain data (``InputRules``) and answers nothing
or the error.
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from builder.errors import LockError, SpecError
from builder.fetch import Sources
from builder.install import check_installable
from builder.lock import Lockfile, parse_lock
from builder.spec import ChannelPolicy, EnvSpec, parse_spec
from service.settings import Settings

logger = logging.getLogger("envyard")

#: Seconds a check may take in the child (its parsers have budgets of about 2 s).
CHECK_TIMEOUT = 60.0


@dataclass(frozen=True)
class InputRules:
    """The settings a check needs, as data a child process can be sent."""

    policy: ChannelPolicy
    platform: str
    sources: Sources  # the configured channels' (empty: see lock_sources)
    max_spec_bytes: int
    max_lock_bytes: int
    settings: Settings

    @classmethod
    def of(cls, settings: Settings) -> InputRules:
        return cls(settings.channel_policy(), settings.build_platform(),
                   settings.package_sources(), settings.max_spec_bytes,
                   settings.max_lock_bytes, settings)

    def lock_sources(self, lock: Lockfile) -> Sources:
        """Where a pushed lock's packages may come from: the configured channels; with
        none configured, the lock's own channels if an allow-list admits them; with
        neither, nowhere (an empty list of channels never means "anywhere")."""
        if self.settings.channels or self.policy.allowed is None:
            return self.sources
        return self.settings.package_sources([c.url for c in lock.metadata.channels])


def utf8(body: bytes | bytearray) -> str:
    """A request body as text, or a 422 that says where it stops being UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"the body is not UTF-8 text (byte {exc.start})") from None


def checked_spec(text: str, rules: InputRules, *, source: str) -> EnvSpec:
    """A submitted environment.yml: the channel policy, the size limit, and no
    ``pip-repositories`` (pip installs only from the service's own index)."""
    spec = parse_spec(text, source=source, policy=rules.policy,
                      max_bytes=rules.max_spec_bytes)
    if spec.pip_repositories:
        raise SpecError("'pip-repositories' is not accepted by this service: pip packages "
                        "come only from its package index (setting pip_index)", source=source)
    return spec


def checked_lock(text: str | bytes, rules: InputRules, *, source: str) -> Lockfile:
    """A pushed conda-lock.yml: it must give a verified environment for the service's
    platform from the service's own channels or package index (``check_installable``),
    and name only channels the allow-list admits."""
    lock = parse_lock(text, source=source, max_bytes=rules.max_lock_bytes)
    for channel in lock.metadata.channels:
        if not rules.policy.check(channel.url):
            raise LockError(f"{source}: it names channel '{channel.url}', which is not "
                            "allowed here")
    check_installable(lock, rules.platform, rules.lock_sources(lock))
    return lock


def _check(kind: str, path: str, rules: InputRules, source: str) -> None:
    """In the child: the whole check of the upload in file ``path``; raises its error."""
    with open(path, "rb") as f:
        body = f.read()
    if kind == "spec":
        checked_spec(utf8(body), rules, source=source)
    else:
        utf8(body)
        checked_lock(body, rules, source=source)


class UploadChecker:
    """Checks uploads in child processes, ``slots`` at a time."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:  # forkserver: never fork a process that has threads
                self._pool = ProcessPoolExecutor(
                    self.slots, mp_context=multiprocessing.get_context("forkserver"))
            return self._pool

    def check(self, kind: str, body: bytes | bytearray, rules: InputRules, *,
              source: str) -> None:
        """Raise the upload's error, if it has one (a parser that crashed the child is a
        refused upload, and the next check gets a new child)."""
        # through a file: pickling tens of megabytes to the child would hold the GIL
        with tempfile.NamedTemporaryFile(prefix="envyard-upload-") as upload:
            upload.write(body)
            upload.flush()
            self._run(kind, upload.name, rules, source)

    def _run(self, kind: str, path: str, rules: InputRules, source: str) -> None:
        try:
            self._executor().submit(_check, kind, path, rules, source).result(
                timeout=CHECK_TIMEOUT)
        except BrokenProcessPool:
            logger.error("the upload checker died on %s; starting a new one", source)
            with self._lock:
                self._pool = None
            raise (SpecError if kind == "spec" else LockError)(
                f"{source}: could not be parsed") from None
        except TimeoutError:
            raise (SpecError if kind == "spec" else LockError)(
                f"{source}: checking it took longer than {CHECK_TIMEOUT:.0f} s") from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
