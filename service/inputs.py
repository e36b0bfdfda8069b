"""What the service accepts from users: submitted specs and pushed locks, checked at the
door (before anything is stored) and again where they are used (the build), because a
row in the database is only as trustworthy as the request that wrote it.

At the door the check runs in a child process (``UploadChecker``): parsing a hostile
64 MB lock is a few seconds of pure Python, which in a thread would hold the GIL against
the event loop (/healthz p99 150 ms), and a parser that crashed would take the service
with it. The child is told the rules as plain data (``InputRules``) and answers nothing
or the error. (The build parses the lock again in the service, as it must to build it.)
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.errors import EnvyardError, LockError, SpecError
from envyard.builder.fetch import Sources
from envyard.builder.install import check_installable
from envyard.builder.lock import Lockfile, parse_lock
from envyard.builder.network import strip_auth, written_secret
from envyard.builder.spec import ChannelPolicy, EnvSpec, parse_spec
from envyard.service.models import Namespace
from envyard.service.settings import Settings

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
    def of(cls, settings: Settings, narrowed: list[str] | None = None) -> InputRules:
        """The service's rules, with a namespace's own channel patterns (``narrowed``)."""
        return cls(settings.channel_policy(narrowed), settings.build_platform(),
                   settings.package_sources(settings.default_channels),
                   settings.max_spec_bytes, settings.max_lock_bytes, settings)

    def lock_sources(self, lock: Lockfile) -> Sources:
        """Where a pushed lock's packages may come from: its own channels, each of which
        the allow-list admits (``checked_lock``), fetched with the service's mirrors and
        credentials; a lock naming no channel fetches nothing."""
        return self.settings.package_sources([c.url for c in lock.metadata.channels
                                              if self.policy.check(c.url)])


def rules_for(session: Session, settings: Settings, namespace: str) -> InputRules:
    """The rules of a submission to ``namespace``: the service's, narrowed by the
    namespace's channel patterns (read now, where the input is used)."""
    narrowed = session.scalar(select(Namespace.allowed_channels)
                              .where(Namespace.name == namespace))
    return InputRules.of(settings, narrowed)


def utf8(body: bytes | bytearray) -> str:
    """A request body as text, or a 422 that says where it stops being UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"the body is not UTF-8 text (byte {exc.start})") from None


def checked_spec(text: str, rules: InputRules, *, source: str) -> EnvSpec:
    """A submitted environment.yml: the channel policy, the size limit, no
    ``pip-repositories`` (pip installs only from the service's own index), and a system
    (``CONDA_OVERRIDE_CUDA``…) within the service's ``virtual_packages_allowed``."""
    spec = parse_spec(text, source=source, policy=rules.policy,
                      max_bytes=rules.max_spec_bytes)
    if spec.pip_repositories:
        raise SpecError("'pip-repositories' is not accepted by this service: pip packages "
                        "come only from its package index (setting pip_index)", source=source)
    spec.system.check(rules.settings.virtual_packages_allowed, rules.platform)
    return spec


def checked_lock(text: str | bytes, rules: InputRules, *, source: str) -> Lockfile:
    """A pushed conda-lock.yml: it must give a verified environment for the service's
    platform from the service's own channels or package index (``check_installable``),
    and name only channels the allow-list admits."""
    lock = parse_lock(text, source=source, max_bytes=rules.max_lock_bytes)
    for url in [c.url for c in lock.metadata.channels] + [p.url for p in lock.package]:
        secret = written_secret(url)
        if secret:
            raise LockError(f"{source}: '{strip_auth(url)}' has {secret} in its URL, which "
                            "every reader of the lock would see; the service has its own "
                            "credentials (conda-lock's ${VAR} placeholders are fine)")
    for channel in lock.metadata.channels:
        if not rules.policy.check(channel.url):
            raise LockError(f"{source}: it names channel '{strip_auth(channel.url)}', "
                            f"which is not allowed here (allowed: {rules.policy.shown()})")
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


def _child(conn: Any, kind: str, path: str, rules: InputRules, source: str) -> None:
    """A checking process: sends None, or the upload's error."""
    try:
        _check(kind, path, rules, source)
        conn.send(None)
    except EnvyardError as exc:
        conn.send(exc)
    except Exception as exc:  # a parser's own failure is a refused upload, not a bug here
        conn.send((SpecError if kind == "spec" else LockError)(
            f"{source}: could not be parsed ({type(exc).__name__})"))
    finally:
        conn.close()


class UploadChecker:
    """Checks each upload in a process of its own (forked from a server that has
    imported this module once): one that runs past ``CHECK_TIMEOUT`` is killed, one that
    crashes costs only itself, and no pool can be left broken or full."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")  # never fork a threaded process
        self._context.set_forkserver_preload(["envyard.service.inputs"])

    def check(self, kind: str, body: bytes | bytearray, rules: InputRules, *,
              source: str) -> None:
        """Raise the upload's error, if it has one."""
        # through a file: pickling tens of megabytes to the child would hold the GIL
        with tempfile.NamedTemporaryFile(prefix="envyard-upload-") as upload:
            upload.write(body)
            upload.flush()
            self._run(kind, upload.name, rules, source)

    def _run(self, kind: str, path: str, rules: InputRules, source: str) -> None:
        refused = SpecError if kind == "spec" else LockError
        receive, send = self._context.Pipe(duplex=False)
        proc = self._context.Process(target=_child, args=(send, kind, path, rules, source),
                                     daemon=True, name="envyard-upload-check")
        proc.start()
        send.close()
        try:
            if not receive.poll(CHECK_TIMEOUT):
                raise refused(f"{source}: checking it took longer than {CHECK_TIMEOUT:.0f} s")
            error = receive.recv()
        except EOFError:
            logger.error("the upload checker died on %s (exit %s)", source, proc.exitcode)
            raise refused(f"{source}: could not be parsed") from None
        finally:
            receive.close()
            proc.join(1)
            if proc.is_alive():
                proc.kill()
                proc.join()
        if error is not None:
            raise error
