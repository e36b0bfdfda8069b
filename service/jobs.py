"""The build queue. The embedded runner builds in this process on a thread pool.

The queue is the database: a queued version is built by the runner that claims it
(``service.runners``), so several service processes on one database and volume share the
work and never build a version twice. The process that takes a submission claims it at
once; every runner also polls for unclaimed versions (``POLL`` seconds) and settles what
dead runners left. On start it settles what a previous process left: builds that were
running are marked failed, claimed ones are queued again, staging directories of no live
build are removed, and every ``current`` link is re-pointed from the database, so a crash
between the two leaves nothing inconsistent.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from builder.layout import point
from service.models import Environment, Namespace
from service.runners import RunnerLock, claim, settle, unclaimed
from service.worker import BuildContext, publish_kernel, run_build

POLL = 1.0  # seconds between looks for unclaimed versions and dead runners


def restore_volume(ctx: BuildContext) -> None:
    """At start: ``current`` links and kernels from the database (a crash may have come
    between the two), and a killed GC's deletions finished."""
    from service.gc import sweep

    with ctx.db.session() as s:
        for env, ns in s.execute(select(Environment, Namespace.name).join(Namespace)
                                 .where(Environment.current_version.is_not(None))):
            point(ctx.layout.current_link(ns, env.name), str(env.current_version))
            publish_kernel(ctx.layout, ns, env.name, env.current_version)
    sweep(ctx.db, ctx.layout, ctx.settings)


class LocalRunner:
    """Runs builds on ``concurrency`` threads of this process."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(ctx.settings.build_concurrency,
                                        thread_name_prefix="envyard-build")
        self._cancels: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.runner = RunnerLock(ctx.layout.root)

    @property
    def id(self) -> str:
        return self.runner.id

    def submit(self, version_id: int) -> None:
        """Build ``version_id`` here if a slot is free and no other runner claimed it; else
        it waits in the database for the first runner with a free slot."""
        if self.pending < self.ctx.settings.build_concurrency and \
                claim(self.ctx.db, version_id, self.runner.id):
            self._start(version_id)

    def _start(self, version_id: int) -> None:
        event = threading.Event()
        with self._lock:
            self._cancels[version_id] = event
        self._pool.submit(self._run, version_id, event)

    def _poll(self) -> None:
        """Claim what no runner took (up to the free slots); settle dead runners."""
        while not self._stop.is_set():
            self._wake.wait(POLL)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                settle(self.ctx.db, self.runner.dead_runners())
                free = self.ctx.settings.build_concurrency - self.pending
                for version_id in unclaimed(self.ctx.db, free) if free > 0 else ():
                    self.submit(version_id)
            except Exception as exc:  # the database may be briefly away; try again
                print(f"envyard: runner poll failed: {type(exc).__name__}: {exc}",
                      flush=True)

    def _run(self, version_id: int, event: threading.Event) -> None:
        try:
            run_build(self.ctx, version_id, event)
        finally:
            with self._lock:
                self._cancels.pop(version_id, None)
            self._wake.set()  # a slot is free: look for queued work now

    def cancel(self, version_id: int) -> None:
        with self._lock:
            event = self._cancels.get(version_id)
        if event is not None:
            event.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._cancels)

    def recover(self) -> None:
        """Settle what dead runners (a previous process) left, then start polling."""
        layout = self.ctx.layout
        dead = self.runner.dead_runners()
        alone = not [p for p in self.runner.dir.glob("*.lock") if p.stem != self.runner.id]
        settle(self.ctx.db, dead, orphans=alone)
        prefixes = layout.root / "prefixes"
        if alone and prefixes.is_dir():  # no other runner may be staging a prefix
            for stale in prefixes.glob(".*.envyard-staging-*"):
                shutil.rmtree(stale, ignore_errors=True)
        restore_volume(self.ctx)
        free = self.ctx.settings.build_concurrency
        for version_id in unclaimed(self.ctx.db, free):
            self.submit(version_id)
        threading.Thread(target=self._poll, daemon=True, name="envyard-runner").start()

    def shutdown(self) -> None:
        """Stop taking work: what this runner claimed goes back to the queue, what it was
        building is marked interrupted."""
        self._stop.set()
        self._wake.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        settle(self.ctx.db, [self.runner.id])
        self.runner.release()
