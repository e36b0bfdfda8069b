"""Several service processes on one database and one volume: who builds what.

Each process is a runner with an id and a lock file ``<root>/runners/<id>.lock`` it holds
(``flock``; Linux's NFS client carries it as a record lock) for as long as it lives: a
runner whose file someone else can lock is dead. A queued version is built by the runner
that claims it with a conditional ``UPDATE … WHERE state = 'queued' AND claimed_by IS
NULL`` (exactly one wins, on SQLite and PostgreSQL alike). What a dead runner held is
settled by whoever notices: its running builds fail ("interrupted"), its claimed but
unstarted ones go back to the queue, an image it was building is marked failed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from envyard.service.db import Database
from envyard.service.models import Version, as_utc, utcnow
from envyard.service.settings import Settings
from envyard.service.transitions import (
    LIVE,
    RUNNING,
    ImageState,
    State,
    become,
    image_state,
    move_all,
    set_image,
)

INTERRUPTED = "interrupted: the service stopped during this build; submit again"
ORPHANED = "interrupted: this build's last state could not be recorded; submit again"
#: Seconds a build may run past the sum of its stage limits before the watchdog fails it.
WATCHDOG_MARGIN = 600.0


class RunnerLock:
    """This process's runner id and the lock that says it is alive."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "runners"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex
        # locked before it is visible under its name: no one sees a live runner unlocked
        self._file: IO[bytes] = (self.dir / f"{self.id}.starting").open("wb")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(self.dir / f"{self.id}.starting", self.dir / f"{self.id}.lock")

    def release(self) -> None:
        """This runner is done and left nothing claimed: its file goes."""
        (self.dir / f"{self.id}.lock").unlink(missing_ok=True)
        self._file.close()

    def close(self) -> None:
        """This runner stops with versions still claimed: the file stays, unlocked, so
        whoever looks next settles them as a dead runner's."""
        self._file.close()

    def dead_runners(self) -> list[str]:
        """Ids of runners whose lock nobody holds (their files are removed)."""
        dead = []
        for path in self.dir.glob("*.lock"):
            if path.stem == self.id:
                continue
            try:
                with path.open("ab") as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    dead.append(path.stem)
                    path.unlink(missing_ok=True)
            except OSError:
                continue  # held: alive
        return dead


def live_runners(root: Path) -> list[str]:
    """Ids of the runners alive now (their lock held), changing nothing: a read for
    people (the admin's queue page), where ``dead_runners`` settles."""
    alive = []
    for path in sorted((root / "runners").glob("*.lock")):
        try:
            with path.open("rb") as f:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except FileNotFoundError:
            continue  # settled meanwhile: dead
        except OSError:
            alive.append(path.stem)  # held (or unreadable): alive
    return alive


def unfinished_builds(session: Session, limit: int = 1000) -> list[dict[str, Any]]:
    """Every queued or running build, oldest first, with who claimed it (a read for
    operators: the admin's queue page)."""
    from envyard.service.models import Environment, Namespace

    rows = session.execute(
        select(Namespace.name, Environment.name, Version.number, Version.state,
               Version.claimed_by, Version.created_at, Version.started_at,
               Version.submitted_by, Version.cancel_requested_at)
        .join(Environment, Version.environment_id == Environment.id)
        .join(Namespace, Environment.namespace_id == Namespace.id)
        .where(Version.state.in_(list(LIVE))).order_by(Version.id).limit(limit)).all()
    return [{"namespace": ns, "name": name, "number": number, "state": state,
             "claimed_by": claimed, "created_at": as_utc(created),
             "started_at": as_utc(started) if started else None, "submitted_by": by,
             "cancelling": cancel is not None}
            for ns, name, number, state, claimed, created, started, by, cancel in rows]


class Runner(Protocol):
    """What the API needs of a runner: the local one or the Kubernetes one."""

    @property
    def id(self) -> str: ...

    @property
    def pending(self) -> int: ...

    def submit(self, version_id: int) -> None: ...

    def cancel(self, version_id: int) -> None: ...

    def run_image(self, stage: Callable[[], None]) -> None:
        """Run an image (re)build asked through the API, bounded as builds are."""

    def recover(self) -> None: ...

    def shutdown(self, grace: float = 0.0) -> None: ...


def claim(db: Database, version_id: int, runner: str) -> bool:
    """Take a queued version for ``runner``; False when another runner has it."""
    with db.session(write=True) as s:
        done = s.execute(update(Version).where(
            Version.id == version_id, Version.state == State.queued,
            Version.claimed_by.is_(None)).values(claimed_by=runner))
        return done.rowcount == 1  # type: ignore[attr-defined]


def unclaimed(db: Database, limit: int) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(Version.id).where(
            Version.state == State.queued, Version.claimed_by.is_(None))
            .order_by(Version.id).limit(limit)))


def build_limit(settings: Settings) -> float:
    """The longest a build may take: every stage's limit, plus a margin."""
    return (settings.solve_timeout + settings.install_timeout + settings.pack_timeout
            + WATCHDOG_MARGIN)


def fail_overdue(db: Database, limit: float) -> list[int]:
    """The watchdog: fail every running build that started more than ``limit`` seconds
    ago (its thread or pod is stuck beyond every stage's own limit). Any runner may run
    it; the build's own later writes then find it no longer theirs. It reads first and
    writes only when there is something to fail (a write takes SQLite's lock)."""
    cutoff = utcnow() - dt.timedelta(seconds=limit)
    overdue = (Version.state.in_(list(RUNNING)), Version.started_at < cutoff)
    with db.session() as s:
        if s.scalar(select(Version.id).where(*overdue).limit(1)) is None:
            return []
    with db.session(write=True) as s:  # the conditions again: one that just published stays
        return move_all(s, State.failed, *overdue, finished_at=utcnow(),
                        error=f"did not finish within {limit:.0f} s (the sum of the stage "
                        "limits); stopped by the watchdog")


def settle_orphans(db: Database, runner: str, building: Callable[[], set[int]]) -> int:
    """Versions ``runner`` claims but no thread of it builds (their last write was lost
    to a database outage): queued ones go back to the queue, running ones fail.
    ``building()`` is asked *after* the claimed versions are read: a version is reserved
    before it is claimed, so one claimed by then is in it unless it is not being built.
    Reads first; writes only when there are orphans."""
    live = list(LIVE)
    with db.session() as s:
        claimed = set(s.scalars(select(Version.id).where(Version.claimed_by == runner,
                                                         Version.state.in_(live))))
    orphans = claimed - building()
    if not orphans:
        return 0
    mine = (Version.id.in_(orphans), Version.claimed_by == runner)
    with db.session(write=True) as s:
        s.execute(update(Version).where(*mine, Version.state == State.queued)
                  .values(claimed_by=None))
        move_all(s, State.failed, *mine, Version.state.in_(live[1:]), finished_at=utcnow(),
                 error=ORPHANED)
    return len(orphans)


def hand_back(db: Database, runner: str) -> int:
    """A stopping runner's unfinished versions go back to the queue, unclaimed, to be
    built from the start by the next runner (stages are idempotent)."""
    with db.session(write=True) as s:
        queued = s.execute(update(Version).where(
            Version.claimed_by == runner, Version.state == State.queued)
            .values(claimed_by=None)).rowcount  # type: ignore[attr-defined]
        running = move_all(s, State.queued, Version.claimed_by == runner,
                           Version.state.in_(list(RUNNING)), claimed_by=None,
                           started_at=None)
        return int(queued) + len(running)


def settle(db: Database, runners: list[str], *, orphans: bool = False) -> int:
    """Settle the versions of dead ``runners`` (and, with ``orphans``, of no runner)."""
    if not runners and not orphans:
        return 0
    owner: ColumnElement[bool] = Version.claimed_by.in_(runners)
    if orphans:
        owner = or_(owner, Version.claimed_by.is_(None))
    settled = 0
    with db.session(write=True) as s:
        for v in s.scalars(select(Version).where(owner, Version.state.in_(
                list(RUNNING)))):
            if v.cancel_requested_at is not None:  # it was being cancelled: it is
                become(v, State.cancelled, finished_at=utcnow(), error="cancelled")
            else:
                become(v, State.failed, finished_at=utcnow(), error=INTERRUPTED)
            settled += 1
        for v in s.scalars(select(Version).where(owner, Version.state == State.queued)):
            if v.cancel_requested_at is not None:  # handed back while being cancelled
                become(v, State.cancelled, finished_at=utcnow(), error="cancelled")
            v.claimed_by = None
            settled += 1
        for v in s.scalars(select(Version).where(owner, Version.image.is_not(None))):
            if image_state(v) is ImageState.building:
                kept = {k: val for k, val in (v.image or {}).items() if k != "state"}
                set_image(v, ImageState.failed, **{**kept, "error": INTERRUPTED})
                settled += 1
    return settled

