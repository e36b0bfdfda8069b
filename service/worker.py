"""Run one build to a terminal state: ``run_build`` (a runner's thread) and ``run_claimed``
(a build pod's entry point). The stages are ``service.stages``; the writes that settle a
build (failed, cancelled, handed back) are ``service.buildstate``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from sqlalchemy import select

from envyard.builder.errors import EnvyardError, Stopped
from envyard.service import logs, policy
from envyard.service.buildlog import BuildLog
from envyard.service.buildstate import (
    BuildContext,
    Cancelled,
    HandedBack,
    Lost,
    fail,
    stopped,
)
from envyard.service.dask import build_pins
from envyard.service.kube_jobs import BUILD_FAILED
from envyard.service.models import Environment, Namespace, Version
from envyard.service.stages import Build, run_stages
from envyard.service.storage import build_key
from envyard.service.transitions import (
    State,
    become,
    cancel_requested,
)

logger = logging.getLogger("envyard")


def run_build(ctx: BuildContext, version_id: int, cancel: threading.Event) -> None:
    """Build one version to a terminal state. It raises only when the database stays
    away past the retries (``retrying``); the runner then settles the version (an
    orphan: ``runners.settle_orphans``)."""
    with ctx.db.session() as s:
        v = s.get(Version, version_id)
        if v is None or v.state != State.queued:
            return
        env = s.get(Environment, v.environment_id)
        assert env is not None
        ns = s.get(Namespace, env.namespace_id)
        assert ns is not None
        where = (ns.name, env.name, v.number)
        pins, extra = build_pins(s, ctx.settings, env, ns, v.constraints)
        base = s.scalar(select(Version.lock_text).where(
            Version.environment_id == env.id, Version.number == v.base_version)
        ) if v.solve == "minimal" and v.base_version is not None else None
        b = Build(ctx, version_id, cancel, where, v.kind, v.spec_text, v.lock_text, pins,
                  extra, policy.dask_policy(ns).value,
                  policy.images(ctx.settings, env, ns).value,
                  BuildLog(ctx.layout.build_dir(*where) / "build.log"),
                  base_text=base, from_preview=v.preview is not None,
                  system=policy.namespace_system(ns))
    log = b.log
    about = logs.building.set("/".join(map(str, where)))  # in every record of this build
    try:
        run_stages(b)
    except Stopped:  # a download ended early for a cancel or the service stopping
        stopped(ctx, version_id, Cancelled() if cancel.is_set() else HandedBack(), log,
                 b.timings, b.stage)
    except Lost:
        log.line("stopped: this build was cancelled, handed back or failed meanwhile")
    except (HandedBack, Cancelled) as stop:
        stopped(ctx, version_id, stop, log, b.timings, b.stage)
    except EnvyardError as exc:
        log.line(f"error: {exc}")
        logger.info("failed: %s", str(exc)[:2000] or type(exc).__name__)
        fail(ctx, version_id, str(exc), b.timings, b.stage)
    except Exception as exc:  # a bug: record it, keep serving
        log.line(f"internal error: {type(exc).__name__}: {exc}")
        logger.exception("internal error in the build")
        fail(ctx, version_id, f"internal error: {type(exc).__name__}: {exc}", b.timings,
             b.stage)
    finally:
        if not ctx.store.local and log.path.exists():
            try:  # the log's last word goes to the store; only this build writes it
                ctx.store.put(build_key(*where, "build.log"), log.path, overwrite=True)
            except EnvyardError as exc:
                logger.warning("could not store the build log: %s", exc)
        logs.building.reset(about)


def run_claimed(ctx: BuildContext, version_id: int, claim: str) -> int:
    """A build pod's entry point (``envyard worker``): take the version for ``claim``, build
    it with ``run_build`` (as the local runner does), and answer an exit code: 0 when
    there is nothing left to do, ``BUILD_FAILED`` when the build failed (retrying cannot
    help). A cancel is seen in the database between stages even before the pod is killed."""
    with ctx.db.session(write=True) as s:
        v = s.get(Version, version_id, with_for_update=True)
        if v is None or State(v.state).terminal or v.claimed_by not in (None, claim):
            return 0  # deleted, finished, cancelled, or not ours: nothing to do
        if v.state != State.queued:  # an earlier pod of this Job was lost mid-build
            become(v, State.queued)
            retried = True
        else:
            retried = False
        v.claimed_by = claim
        where = (v.environment.namespace.name, v.environment.name, v.number)
    if retried:
        BuildLog(ctx.layout.build_dir(*where) / "build.log").line(
            "retrying: the previous pod of this build was lost")
    ctx = dataclasses.replace(ctx, claim=claim)
    cancel, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.wait(2.0):
            with ctx.db.session() as s:
                row = s.get(Version, version_id)
                assert row is not None  # version rows are never deleted (GC marks them)
                if row.state == State.cancelled or cancel_requested(s, version_id):
                    cancel.set()
                    return

    threading.Thread(target=watch, daemon=True, name="envyard-cancel-watch").start()
    try:
        run_build(ctx, version_id, cancel)
    finally:
        done.set()
    with ctx.db.session() as s:
        state = s.get(Version, version_id).state  # type: ignore[union-attr]
    return BUILD_FAILED if state == State.failed else 0




__all__ = ["run_build", "run_claimed"]
