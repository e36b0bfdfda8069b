"""What every build shares, and how a build writes its version: the conditional writes
that keep a build from overwriting a cancel, a hand-back or a watchdog that got there
first, retried while the database is away, and the one transaction that publishes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy.exc
from sqlalchemy import update

from envyard.builder.layout import Layout
from envyard.builder.lock import Lockfile
from envyard.service import current
from envyard.service.buildlog import BuildLog
from envyard.service.db import Database
from envyard.service.find import index_packages
from envyard.service.models import Artifact, Environment, Version, utcnow
from envyard.service.settings import Settings
from envyard.service.storage import ArtifactStore
from envyard.service.transitions import (
    LIVE,
    RUNNING,
    State,
    become,
    cancel_requested,
    check,
    move,
)

T = TypeVar("T")
Solved = tuple[str, Lockfile]  # a solve's lock: its text and the object it was made from
logger = logging.getLogger("envyard")


class Cancelled(Exception):
    """The build was cancelled between stages."""


class HandedBack(Exception):
    """The service is stopping: the build goes back to the queue at a stage boundary."""


class Lost(Exception):
    """The version is no longer this build's (cancelled, handed back, failed by the
    watchdog or by whoever settled a dead runner): nothing more is written."""


@dataclass
class BuildContext:
    """What every build needs: settings, database, volume, and the shared in-flight solves."""

    settings: Settings
    db: Database
    layout: Layout
    store: ArtifactStore  # where packs, specs, locks and logs are published
    claim: str | None = None  # the claimed_by of this runner's builds; writes require it
    stopping: threading.Event = field(default_factory=threading.Event)  # hand builds back
    solves: dict[str, Future[Solved]] = field(default_factory=dict)
    solves_lock: threading.Lock = field(default_factory=threading.Lock)
    solved: dict[str, tuple[float, Solved]] = field(default_factory=dict)

#: A build's writes are retried this long when the database is away or its pool is dry.
WRITE_RETRY_SECONDS = 60.0


def retrying(write: Callable[[], T], *, seconds: float = WRITE_RETRY_SECONDS) -> T:
    """``write()``, retried with backoff while the database is unavailable (pool
    exhausted, SQLite locked, connection lost), for up to ``seconds``. A build's state
    must not be lost to one failed write: the failure path itself writes."""
    deadline, delay = time.monotonic() + seconds, 0.2
    while True:
        try:
            return write()
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError,
                sqlalchemy.exc.InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("database write failed, retrying in %.1f s: %s", delay,
                           str(exc).splitlines()[0])
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def record(ctx: BuildContext, version_id: int, state: State | None = None,
         **changes: Any) -> None:
    """Write ``changes`` (and move to ``state``, a stage) if the version is still this
    build's (live, claimed by this runner); else raise ``Lost``: a cancel, a hand-back or
    a watchdog got there first. A stage does not begin once a cancel is requested, from
    whichever process (``Cancelled``)."""
    def write() -> str:
        with ctx.db.session(write=True) as s:
            if state is not None:
                if move(s, version_id, state, claim=ctx.claim, unless_cancelled=True,
                        **changes):
                    return "moved"
                return "cancelled" if cancel_requested(s, version_id) else "lost"
            where = [Version.id == version_id, Version.state.in_(list(LIVE))]
            if ctx.claim is not None:
                where.append(Version.claimed_by == ctx.claim)
            done = s.execute(update(Version).where(*where).values(**changes))
            return "moved" if done.rowcount == 1 else "lost"  # type: ignore[attr-defined]

    outcome = retrying(write)
    if outcome == "cancelled":
        raise Cancelled
    if outcome == "lost":
        raise Lost


def boundary(ctx: BuildContext, cancel: threading.Event, version_id: int) -> None:
    """Between stages: stop here if the build was cancelled (here, or in the database by
    another process) or the service is stopping."""
    if cancel.is_set():
        raise Cancelled

    def asked() -> bool:
        with ctx.db.session() as s:
            return cancel_requested(s, version_id)

    if retrying(asked):  # before the hand-back: a cancelled build is not queued again
        cancel.set()
        raise Cancelled
    if ctx.stopping.is_set():
        raise HandedBack


def stopped(ctx: BuildContext, version_id: int, stop: Exception, log: BuildLog,
             timings: dict[str, float], stage: str | None = None) -> None:
    """A build stopped between stages (or mid-download): cancelled, or handed back;
    ``stage``: the one it stopped in."""
    if isinstance(stop, HandedBack):
        log.line("the service is stopping: back to the queue, to be built again")
        settle(ctx, version_id, State.queued, claimed_by=None, started_at=None)
        return
    log.stage = State.cancelled
    log.line("cancelled")
    settle(ctx, version_id, State.cancelled, finished_at=utcnow(),
             timings=timings, error="cancelled", stopped_in=stage)


def fail(ctx: BuildContext, version_id: int, error: str, timings: dict[str, float],
         stage: str | None = None) -> None:
    """The build failed (in ``stage``, when known)."""
    settle(ctx, version_id, State.failed, error=error, finished_at=utcnow(),
             timings=timings, stopped_in=stage)


def settle(ctx: BuildContext, version_id: int, state: State, **changes: Any) -> None:
    """A build's last write: ``Lost`` means someone else already settled the version. If
    the database stays away past the retries, the runner's poll loop settles it later
    (``jobs.LocalRunner``: a version it claims that no thread builds)."""
    def write() -> bool:
        with ctx.db.session(write=True) as s:
            return move(s, version_id, state, claim=ctx.claim, **changes)

    retrying(write)


def publish(ctx: BuildContext, version_id: int, where: tuple[str, str, int],
             artifacts: dict[str, tuple[str, int | None]], announce: Callable[[], None],
             *, packages: list[dict[str, str]], **fields: Any) -> None:
    """Mark ready, record the artifacts and the packages (with their index, which finding
    environments reads) and move ``current`` forward, in one transaction (``announce``
    writes the log's last lines once nothing can refuse it, before the commit makes it
    visible); then swap the link."""
    with ctx.db.session(write=True) as s:
        v = s.get(Version, version_id, with_for_update=True)
        assert v is not None
        if v.state not in RUNNING or (ctx.claim is not None and v.claimed_by != ctx.claim):
            raise Lost  # cancelled, handed back or failed meanwhile (e.g. its Job deleted)
        if v.cancel_requested_at is not None:
            raise Cancelled  # asked in another process: the build ends here, not ready
        check(v.state, State.ready)  # (raises before the log says ready)
        announce()
        for kind, (path, size) in artifacts.items():
            s.add(Artifact(version_id=v.id, kind=kind, path=path,
                           bytes=size if size is not None else os.path.getsize(path)))
        env = s.get(Environment, v.environment_id, with_for_update=True)
        assert env is not None
        for k, val in fields.items():
            setattr(v, k, val)
        v.packages = packages
        index_packages(s, v.id, packages)
        become(v, State.ready, finished_at=utcnow())
        moved = current.point_at(env, v.number, forward_only=True)
    if moved:
        current.show(ctx.layout, ctx.settings, *where)




__all__ = ["BuildContext", "Cancelled", "HandedBack", "Lost", "boundary", "fail", "publish",
           "record", "retrying", "settle", "stopped"]
