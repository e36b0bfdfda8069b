"""The build queue. The embedded runner builds in this process on a thread pool.

On start it settles what a previous process left: builds that were running are marked
failed (their staging directories are removed by the next install of the same prefix, or
here), queued ones are queued again, and every ``current`` link is re-pointed from the
database, so a crash between the two leaves nothing inconsistent.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from builder.layout import point
from service.models import RUNNING, Environment, Namespace, State, Version, utcnow
from service.worker import BuildContext, publish_kernel, run_build


class LocalRunner:
    """Runs builds on ``concurrency`` threads of this process."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self._pool = ThreadPoolExecutor(ctx.settings.build_concurrency,
                                        thread_name_prefix="envyard-build")
        self._cancels: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def submit(self, version_id: int) -> None:
        event = threading.Event()
        with self._lock:
            self._cancels[version_id] = event
        self._pool.submit(self._run, version_id, event)

    def _run(self, version_id: int, event: threading.Event) -> None:
        try:
            run_build(self.ctx, version_id, event)
        finally:
            with self._lock:
                self._cancels.pop(version_id, None)

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
        """Settle the previous process's builds, then queue what was waiting."""
        layout = self.ctx.layout
        prefixes = layout.root / "prefixes"
        if prefixes.is_dir():
            for stale in prefixes.glob(".*.envyard-staging-*"):
                shutil.rmtree(stale, ignore_errors=True)
        with self.ctx.db.session(write=True) as s:
            for v in s.scalars(select(Version).where(
                    Version.state.in_([st.value for st in RUNNING]))):
                v.state, v.finished_at = State.failed.value, utcnow()
                v.error = "interrupted: the service stopped during this build; submit again"
            queued = list(s.scalars(select(Version.id).where(
                Version.state == State.queued.value).order_by(Version.id)))
            for env, ns in s.execute(select(Environment, Namespace.name).join(Namespace)
                                     .where(Environment.current_version.is_not(None))):
                point(layout.current_link(ns, env.name), str(env.current_version))
                publish_kernel(layout, ns, env.name, env.current_version)
        from service.gc import sweep

        sweep(self.ctx.db, layout, self.ctx.settings)  # finish a killed GC's deletions
        for version_id in queued:
            self.submit(version_id)

    def shutdown(self) -> None:
        """Stop taking work; queued builds stay queued for the next start."""
        self._pool.shutdown(wait=False, cancel_futures=True)
