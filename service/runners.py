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

import fcntl
import os
import uuid
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import or_, select, update

from service.db import Database
from service.models import RUNNING, State, Version, utcnow

INTERRUPTED = "interrupted: the service stopped during this build; submit again"


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
        (self.dir / f"{self.id}.lock").unlink(missing_ok=True)
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


class Runner(Protocol):
    """What the API needs of a runner: the local one or the Kubernetes one."""

    @property
    def id(self) -> str: ...

    @property
    def pending(self) -> int: ...

    def submit(self, version_id: int) -> None: ...

    def cancel(self, version_id: int) -> None: ...

    def recover(self) -> None: ...

    def shutdown(self) -> None: ...


def claim(db: Database, version_id: int, runner: str) -> bool:
    """Take a queued version for ``runner``; False when another runner has it."""
    with db.session(write=True) as s:
        done = s.execute(update(Version).where(
            Version.id == version_id, Version.state == State.queued.value,
            Version.claimed_by.is_(None)).values(claimed_by=runner))
        return done.rowcount == 1  # type: ignore[attr-defined]


def unclaimed(db: Database, limit: int) -> list[int]:
    with db.session() as s:
        return list(s.scalars(select(Version.id).where(
            Version.state == State.queued.value, Version.claimed_by.is_(None))
            .order_by(Version.id).limit(limit)))


def settle(db: Database, runners: list[str], *, orphans: bool = False) -> int:
    """Settle the versions of dead ``runners`` (and, with ``orphans``, of no runner)."""
    if not runners and not orphans:
        return 0
    owner = Version.claimed_by.in_(runners)
    if orphans:
        owner = or_(owner, Version.claimed_by.is_(None))
    settled = 0
    with db.session(write=True) as s:
        for v in s.scalars(select(Version).where(owner, Version.state.in_(
                [st.value for st in RUNNING]))):
            v.state, v.finished_at, v.error = State.failed.value, utcnow(), INTERRUPTED
            settled += 1
        for v in s.scalars(select(Version).where(owner, Version.state == State.queued.value)):
            v.claimed_by = None
            settled += 1
        for v in s.scalars(select(Version).where(owner, Version.image.is_not(None))):
            if (v.image or {}).get("state") == "building":
                v.image = {**v.image, "state": "failed", "error": INTERRUPTED}  # type: ignore[dict-item]
                settled += 1
    return settled

