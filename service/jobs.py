"""The build queue. The embedded runner builds in this process on a thread pool.

The queue is the database: a queued version is built by the runner that claims it
(``service.runners``), so several service processes on one database and volume share the
work and never build a version twice. The process that takes a submission claims it at
once; every runner also polls for unclaimed versions (``POLL`` seconds) and settles what
dead runners left. On start it settles what a previous process left: builds that were
running are marked failed, claimed ones are queued again, staging directories of no live
build are removed, and every ``current`` link is re-pointed from the database, so a crash
between the two leaves nothing inconsistent.

Nothing stays stuck: each poll also settles this runner's orphans (versions it claims but
no thread builds, because a build's last write was lost to a database outage) and runs
the watchdog (``runners.fail_overdue``). Stopping hands unfinished builds back to the
queue: running ones at their next stage boundary, within ``shutdown_grace`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

from sqlalchemy import select

from envyard.service import current
from envyard.service.buildstate import BuildContext
from envyard.service.models import Environment, Namespace
from envyard.service.runners import (
    RunnerLock,
    build_limit,
    claim,
    fail_overdue,
    hand_back,
    settle,
    settle_orphans,
    unclaimed,
)
from envyard.service.transitions import cancels_for
from envyard.service.upgrade import settle_pin_moves
from envyard.service.worker import run_build

POLL = 1.0  # seconds between looks for unclaimed versions and dead runners
logger = logging.getLogger("envyard")


def restore_volume(ctx: BuildContext) -> None:
    """At start: ``current`` links and kernels from the database (a crash may have come
    between the two; a deleted environment has none), a killed GC's deletions finished,
    killed processes' leftovers removed (those no live process owns)."""
    from envyard.service import leftovers
    from envyard.service.gc import sweep

    with ctx.db.session() as s:
        for env, ns in s.execute(select(Environment, Namespace.name).join(Namespace)
                                 .where(Environment.current_version.is_not(None))):
            assert env.current_version is not None  # the query leaves out the others
            current.show(ctx.layout, ctx.settings, ns, env.name, env.current_version)
        for name, ns in s.execute(select(Environment.name, Namespace.name).join(Namespace)
                                  .where(Environment.deleted_at.is_not(None))):
            current.hide(ctx.layout, ns, name)  # deleted: a crash may have come before
    sweep(ctx.db, ctx.layout, ctx.settings)
    leftovers.sweep(ctx.layout, min_age=build_limit(ctx.settings))


BUILD_NICENESS = 10


def _yield_to_requests() -> None:
    """Build threads (and the compression and link threads they start, which inherit
    it) run at a lower CPU priority than the threads answering requests: on a small
    machine three builds packing with every core otherwise starve the API."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICENESS)


class LocalRunner:
    """Runs builds on ``concurrency`` threads of this process."""

    def __init__(self, ctx: BuildContext) -> None:
        self.runner = RunnerLock(ctx.layout.root)
        self.ctx = replace(ctx, claim=self.runner.id)
        self._pool = ThreadPoolExecutor(ctx.settings.build_concurrency,
                                        thread_name_prefix="envyard-build",
                                        initializer=_yield_to_requests)
        self._cancels: dict[int, threading.Event] = {}  # what this runner builds (or claims)
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def id(self) -> str:
        return self.runner.id

    def submit(self, version_id: int) -> None:
        """Build ``version_id`` here if a slot is free and no other runner claimed it; else
        it waits in the database for the first runner with a free slot. Never raises: a
        version the database would not let us claim is found again by a poll."""
        event = threading.Event()
        with self._lock:  # the slot is reserved before the claim: no poll sees an orphan
            if self._stop.is_set() or version_id in self._cancels or \
                    len(self._cancels) >= self.ctx.settings.build_concurrency:
                return
            self._cancels[version_id] = event
        try:
            claimed = claim(self.ctx.db, version_id, self.runner.id)
        except Exception as exc:
            logger.warning("could not claim version %s (a poll will): %s", version_id, exc)
            claimed = False
        if not claimed:
            with self._lock:
                self._cancels.pop(version_id, None)
            return
        try:
            future = self._pool.submit(self._run, version_id, event)
        except RuntimeError:  # shutting down: the claim goes back with the hand-back
            with self._lock:
                self._cancels.pop(version_id, None)
            return
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def _poll(self) -> None:
        """Claim what no runner took (up to the free slots); settle dead runners, this
        runner's orphans and overdue builds."""
        limit = build_limit(self.ctx.settings)
        while not self._stop.is_set():
            self._wake.wait(POLL)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                settle(self.ctx.db, self.runner.dead_runners())
                settle_orphans(self.ctx.db, self.runner.id, self._building)
                for version_id in fail_overdue(self.ctx.db, limit):
                    self.cancel(version_id)
                with self.ctx.db.session() as s:  # cancels asked of another process
                    for version_id in cancels_for(s, self.runner.id):
                        self.cancel(version_id)
                settle_pin_moves(self.ctx.db)  # applied Dask upgrades whose builds ended
                free = self.ctx.settings.build_concurrency - self.pending
                for version_id in unclaimed(self.ctx.db, free) if free > 0 else ():
                    self.submit(version_id)
            except Exception as exc:  # the database may be briefly away; try again
                logger.warning("runner poll failed: %s: %s", type(exc).__name__, exc)

    def _run(self, version_id: int, event: threading.Event) -> None:
        try:
            run_build(self.ctx, version_id, event)
        except Exception:  # its state is settled by the next poll (an orphan)
            logger.exception("build of version %s ended without its last write", version_id)
        finally:
            with self._lock:
                self._cancels.pop(version_id, None)
            self._wake.set()  # a slot is free: look for queued work now

    def run_image(self, stage: Callable[[], None]) -> None:
        """On the build threads: an image rebuild waits for a free one, as builds do."""
        future = self._pool.submit(stage)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def cancel(self, version_id: int) -> None:
        with self._lock:
            event = self._cancels.get(version_id)
        if event is not None:
            event.set()

    def _building(self) -> set[int]:
        with self._lock:
            return set(self._cancels)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._cancels)

    def recover(self) -> None:
        """Settle what dead runners (a previous process) left, then start polling."""
        dead = self.runner.dead_runners()
        alone = not [p for p in self.runner.dir.glob("*.lock") if p.stem != self.runner.id]
        settle(self.ctx.db, dead, orphans=alone)
        restore_volume(self.ctx)  # also clears staging no live build owns
        free = self.ctx.settings.build_concurrency
        for version_id in unclaimed(self.ctx.db, free):
            self.submit(version_id)
        self._poller = threading.Thread(target=self._poll, daemon=True, name="envyard-runner")
        self._poller.start()

    def shutdown(self, grace: float = 0.0) -> None:
        """Stop taking work; give running builds ``grace`` seconds to reach a stage
        boundary, where they hand themselves back to the queue; hand back the rest (a
        build stuck inside a stage is built again from the start by the next runner)."""
        self._stop.set()
        self._wake.set()
        self.ctx.stopping.set()
        if self._poller is not None:  # no claim may land after the hand-back below
            self._poller.join(timeout=POLL + 5)
        with self._lock:
            running = set(self._futures)
        if running and grace > 0:
            logger.info("waiting up to %.0f s for %d build(s) to reach a stage boundary",
                        grace, len(running))
            wait(running, timeout=grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            hand_back(self.ctx.db, self.runner.id)
        except Exception as exc:
            # keep the lock file: a runner whose file is left unlocked is a dead one, whose
            # versions the next process (or another replica) settles
            logger.warning("could not hand builds back to the queue: %s", exc)
            self.runner.close()
            return
        self.runner.release()
