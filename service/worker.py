"""Run one build: the version's stages, its log, its state changes, its publication.

queued -> solving -> installing -> packing -> ready | failed | cancelled. Prefixes are shared
by fingerprint (identical locks are installed once, concurrent ones wait for the first);
identical specs solving at the same time share one solve. ``current`` moves only to a ready
version, and only forward.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy.exc
from sqlalchemy import update

from envyard.builder.aio import call_with_timeout
from envyard.builder.dask import PinSet, pins_from_constraints
from envyard.builder.dask import check as dask_check
from envyard.builder.dask import constraints as dask_constraints
from envyard.builder.errors import DaskMismatch, EnvyardError, PackError, Stopped
from envyard.builder.install import InstallResult, fingerprint, install_lock
from envyard.builder.kernels import has_ipykernel
from envyard.builder.layout import Layout, guard_of, point
from envyard.builder.lock import DEFAULT_CATEGORIES, Lockfile, dump_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.pack import pack_prefix
from envyard.builder.spec import EnvSpec
from envyard.service import current, logs, policy
from envyard.service.buildlog import BuildLog
from envyard.service.dask import current_pins
from envyard.service.db import Database
from envyard.service.inputs import InputRules, checked_lock, checked_spec
from envyard.service.kube_jobs import BUILD_FAILED
from envyard.service.models import Artifact, Environment, Namespace, Version, utcnow
from envyard.service.quota import check_build_quota
from envyard.service.settings import Settings
from envyard.service.storage import ArtifactStore, build_key, pack_key
from envyard.service.transitions import (
    LIVE,
    RUNNING,
    State,
    become,
    cancel_requested,
    check,
    move,
)
from envyard.service.usage import inode_table

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

#: How long a finished solve answers identical submissions (the channel may change later).
SOLVE_REUSE_SECONDS = 60.0


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


def _set(ctx: BuildContext, version_id: int, state: State | None = None,
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


def _boundary(ctx: BuildContext, cancel: threading.Event, version_id: int) -> None:
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


def _solve_once(ctx: BuildContext, key: str, solve: Callable[[], Solved]
                ) -> tuple[Solved, bool]:
    """Run ``solve()`` unless an identical one is running or has just finished; then share
    its lock (text and object, read-only). Returns it and whether it was shared."""
    now = time.monotonic()
    with ctx.solves_lock:
        recent = ctx.solved.get(key)
        if recent is not None and now - recent[0] < SOLVE_REUSE_SECONDS:
            return recent[1], True
        running = ctx.solves.get(key)
        if running is None:
            mine: Future[Solved] = Future()
            ctx.solves[key] = mine
    if running is not None:
        return running.result(), True
    try:
        text = solve()
        mine.set_result(text)
        with ctx.solves_lock:
            ctx.solved = {k: v for k, v in ctx.solved.items()
                          if now - v[0] < SOLVE_REUSE_SECONDS}
            ctx.solved[key] = (time.monotonic(), text)
        return text, False
    except BaseException as exc:
        mine.set_exception(exc)
        raise
    finally:
        with ctx.solves_lock:
            ctx.solves.pop(key, None)


@dataclass
class Build:
    """One build: what it was given, and what each stage hands the next. The spec is
    parsed once and the solved lock kept as the object the solver made (its text is
    written for the record, never read back)."""

    ctx: BuildContext
    version_id: int
    cancel: threading.Event
    where: tuple[str, str, int]
    kind: str  # "spec" or "lock"
    spec_text: str | None
    lock_text: str | None
    pins: PinSet | None
    extra: list[str]  # the Dask pins as solver constraints, when followed
    dask_policy: str
    image: bool
    log: BuildLog
    platform: str = ""
    rules: InputRules | None = None
    spec: EnvSpec | None = None
    lock: Lockfile | None = None
    fp: str = ""
    built: InstallResult | None = None
    pack_bytes: int | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A step of a build. The wrapper (``run_stages``) checks for a cancel before it,
    moves the version to ``state`` (with ``fields``), runs it, and, for a ``timed`` stage,
    records its seconds and logs what it returned with them."""

    name: str
    run: Callable[[Build], str | None]
    state: State | None = None
    fields: Callable[[Build], dict[str, Any]] = lambda b: {}
    applies: Callable[[Build], bool] = lambda b: True
    timed: bool = False
    cancellable: bool = True  # False after publishing: a ready version is not cancelled


def _read(b: Build) -> str | None:
    """The spec, checked again where it is used (not only at the door), parsed once."""
    b.platform = b.ctx.settings.build_platform()
    b.rules = InputRules.of(b.ctx.settings)
    where = b.where
    if b.spec_text is not None:
        b.spec = checked_spec(b.spec_text, b.rules, source=f"{where[0]}/{where[1]}.yml")
    _set(b.ctx, b.version_id, started_at=utcnow())
    return None


def _channels(b: Build) -> list[str]:
    return b.ctx.settings.channels or (list(b.spec.channels) if b.spec else [])


def _solve(b: Build) -> str:
    assert b.spec is not None and b.spec_text is not None
    ctx, channels = b.ctx, _channels(b)
    b.log.line(f"solving for {b.platform}")
    if b.extra:
        b.log.line(f"solving within the cluster's pins: {', '.join(b.extra)}")
    key = hashlib.sha256(json.dumps([b.spec_text, channels, b.platform, b.extra]).encode()
                         ).hexdigest()
    spec = b.spec

    def solve() -> tuple[str, Lockfile]:
        lock = lock_env(spec, LockOptions(
            channels=channels, platforms=[b.platform], constraints=b.extra,
            timeout=ctx.settings.solve_timeout, cache_dir=ctx.layout.cache,
            pip_index=ctx.settings.pip_index))
        return dump_lock(lock), lock

    (b.lock_text, b.lock), shared = _solve_once(ctx, key, solve)
    _set(ctx, b.version_id, lock_text=b.lock_text)
    return "reused the solve of an identical submission" if shared else "solved"


def _check(b: Build) -> None:
    """The lock against the Dask cluster's pins and the namespace's quota."""
    assert b.lock_text is not None and b.rules is not None
    (b.ctx.layout.build_dir(*b.where) / "conda-lock.yml").write_text(b.lock_text)
    if b.lock is None:  # a pushed lock: hostile until checked
        b.lock = checked_lock(b.lock_text, b.rules, source="the lock")
    lock, log = b.lock, b.log
    if b.pins is not None:
        report = dask_check(lock, b.platform, b.pins)
        _set(b.ctx, b.version_id, dask_report=report.as_dict())
        if report.applies:
            log.line(f"dask pin check against {b.pins.source or 'the cluster pins'}:")
            for row in report.lines():
                log.line("  " + row)
        if report.applies and not report.ok and b.dask_policy == "block":
            bad = [v.package for v in report.blocking] + (
                ["dask/distributed lockstep"] if report.lockstep else [])
            raise DaskMismatch(f"required packages differ from the Dask cluster's pins: "
                               f"{', '.join(bad)} (namespace policy: block)")
    with b.ctx.db.session() as s:
        check_build_quota(s, b.ctx.settings, b.where[0], b.version_id, lock, b.platform)
    b.fp = fingerprint(lock, b.platform, _variables(b), _categories(b))
    return None


def _variables(b: Build) -> dict[str, str]:
    return b.spec.variables if b.spec else {}


def _categories(b: Build) -> tuple[str, ...]:
    """A spec's own category is what it asked for; a pushed lock gets conda-lock's."""
    if b.spec is None:
        return DEFAULT_CATEGORIES
    return tuple(dict.fromkeys((*DEFAULT_CATEGORIES, b.spec.category)))


def _install(b: Build) -> str:
    assert b.lock is not None and b.rules is not None
    ctx, cancel = b.ctx, b.cancel
    b.built = built = install_lock(
        b.lock, prefix=ctx.layout.prefix(b.fp), platform=b.platform, pkgs_dir=ctx.layout.pkgs,
        force=True, variables=_variables(b), timeout=ctx.settings.install_timeout,
        progress=b.log.progress, categories=_categories(b), shared_records=True,
        sources=b.rules.lock_sources(b.lock) if b.kind == "lock"
        else ctx.settings.package_sources(_channels(b)),
        stop=lambda: cancel.is_set() or ctx.stopping.is_set())
    return (("reused the prefix" if built.reused else "installed")
            + f" {built.conda_packages} conda + {built.pip_packages} pip packages")


def _pack_stage(b: Build) -> str:
    assert b.built is not None
    b.pack_bytes = _pack(b.ctx, b.fp, b.built.prefix, b.log)
    return f"packed {b.pack_bytes} bytes"


def _publish_stage(b: Build) -> None:
    """Link the version to its prefix, store its files, and make it ready (and current,
    if it is the newest) in one transaction."""
    assert b.built is not None and b.lock is not None
    ctx, where, log, built = b.ctx, b.where, b.log, b.built
    point(ctx.layout.version_link(*where), os.path.relpath(
        built.prefix, ctx.layout.env_dir(where[0], where[1])))
    packages = sorted(({"name": p.name, "version": p.version, "manager": p.manager}
                       for p in b.lock.for_platform(b.platform)), key=lambda p: p["name"])
    prefix_bytes = sum(inode_table(ctx.layout, b.fp).values())  # cached for usage reports
    bdir = ctx.layout.build_dir(*where)
    if b.spec_text is not None:
        (bdir / "environment.yml").write_text(b.spec_text)
    artifacts = _store_files(ctx, where, bdir, has_spec=b.spec_text is not None)
    artifacts["prefix"] = (str(built.prefix), prefix_bytes)
    if b.pack_bytes is not None:
        artifacts["pack"] = (ctx.store.uri(pack_key(b.fp)), b.pack_bytes)
    kernel = has_ipykernel(built.prefix)

    def announce() -> None:  # once publishing cannot be refused, before it commits:
        log.stage = State.ready  # a follower stops reading at "ready"
        if not kernel:
            log.line("no kernel: ipykernel is not in this environment")
        log.line("ready")

    _publish(ctx, b.version_id, where, artifacts, announce, timings=b.timings,
             packages=packages, prefix_bytes=prefix_bytes, pack_bytes=b.pack_bytes)
    logger.info("ready: %d packages, %s", len(packages), b.timings)
    return None


def _image_stage(b: Build) -> None:
    assert b.built is not None and b.lock_text is not None
    current.publish_image(b.ctx.db, b.ctx.settings, b.ctx.layout, b.version_id, b.where,
                          b.built.prefix, b.lock_text, b.log)
    return None


#: A build, in order. A pushed lock skips the solve; without packs there is no packing.
STAGES = (
    Stage("read", _read),
    Stage("solve", _solve, State.solving, applies=lambda b: b.kind == "spec", timed=True),
    Stage("check", _check),
    Stage("install", _install, State.installing, fields=lambda b: {"fingerprint": b.fp},
          timed=True),
    Stage("pack", _pack_stage, State.packing, applies=lambda b: b.ctx.settings.pack,
          timed=True),
    Stage("publish", _publish_stage),
    Stage("image", _image_stage, applies=lambda b: b.image, cancellable=False),
)


def run_stages(b: Build, stages: Sequence[Stage] = STAGES) -> None:
    """Run ``stages`` in order, each checked for a cancel, moved to its state, timed and
    logged the same way. Raises what a stage raises (``run_build`` settles it)."""
    for stage in stages:
        if not stage.applies(b):
            continue
        if stage.cancellable:
            _boundary(b.ctx, b.cancel, b.version_id)
        if stage.state is not None:
            b.log.stage = stage.state
            _set(b.ctx, b.version_id, stage.state, **stage.fields(b))
        logger.debug("stage %s", stage.name)
        start = time.perf_counter()
        said = stage.run(b)
        if stage.timed:
            b.timings[stage.name] = seconds = round(time.perf_counter() - start, 3)
            if said:
                b.log.line(f"{said} in {seconds} s")


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
        pins = current_pins(s, ctx.settings)
        if v.constraints:  # built to move the cluster: checked against the pins it moves to
            pins = pins_from_constraints(list(v.constraints), "the proposed pins")
        follow = policy.dask_follow(env, ns).value
        b = Build(ctx, version_id, cancel, where, v.kind, v.spec_text, v.lock_text, pins,
                  dask_constraints(pins) if pins and (follow or v.constraints) else [],
                  policy.dask_policy(ns).value, policy.images(ctx.settings, env, ns).value,
                  BuildLog(ctx.layout.build_dir(*where) / "build.log"))
    log = b.log
    about = logs.building.set("/".join(map(str, where)))  # in every record of this build
    try:
        run_stages(b)
    except Stopped:  # a download ended early for a cancel or the service stopping
        _stopped(ctx, version_id, Cancelled() if cancel.is_set() else HandedBack(), log,
                 b.timings)
    except Lost:
        log.line("stopped: this build was cancelled, handed back or failed meanwhile")
    except (HandedBack, Cancelled) as stop:
        _stopped(ctx, version_id, stop, log, b.timings)
    except EnvyardError as exc:
        log.line(f"error: {exc}")
        logger.info("failed: %s", str(exc)[:2000] or type(exc).__name__)
        _fail(ctx, version_id, str(exc), b.timings)
    except Exception as exc:  # a bug: record it, keep serving
        log.line(f"internal error: {type(exc).__name__}: {exc}")
        logger.exception("internal error in the build")
        _fail(ctx, version_id, f"internal error: {type(exc).__name__}: {exc}", b.timings)
    finally:
        if not ctx.store.local and log.path.exists():
            try:  # the log's last word goes to the store; only this build writes it
                ctx.store.put(build_key(*where, "build.log"), log.path, overwrite=True)
            except EnvyardError as exc:
                logger.warning("could not store the build log: %s", exc)
        logs.building.reset(about)


def _pack(ctx: BuildContext, fp: str, prefix: Any, log: BuildLog) -> int:
    """The prefix's conda-pack archive, once per fingerprint (a file lock); with a remote
    store it is uploaded and the volume's copy removed. Returns its size."""
    store, key = ctx.store, pack_key(fp)
    archive = ctx.layout.pack(fp)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with guard_of(archive).open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one packing per fingerprint
        there = None if store.local else store.stat(key)
        if there is None and not archive.exists():
            seconds = ctx.settings.pack_timeout
            call_with_timeout(
                lambda: pack_prefix(prefix, archive, progress=log.progress),
                timeout=seconds, on_timeout=lambda: PackError(
                    f"packing did not finish within {seconds:.0f} s"))
        if store.local:
            return archive.stat().st_size
        if there is None:
            log.line(f"uploading the pack to {store.uri(key)}")
            there = store.put(key, archive)
        archive.unlink(missing_ok=True)
        return there.size


def _store_files(ctx: BuildContext, where: tuple[str, str, int], bdir: Any,
                 has_spec: bool) -> dict[str, tuple[str, int | None]]:
    """Spec and lock into a remote store (the volume keeps its own copies beside the
    log); returns the artifact rows: where each one is and its size."""
    names = {"lock": "conda-lock.yml", "log": "build.log"}
    if has_spec:
        names["spec"] = "environment.yml"
    rows: dict[str, tuple[str, int | None]] = {}
    for kind, filename in names.items():
        key = build_key(*where, filename)
        if ctx.store.local or kind == "log":  # the log is stored when the build ends
            rows[kind] = (ctx.store.uri(key), (bdir / filename).stat().st_size)
        else:
            rows[kind] = (ctx.store.uri(key), ctx.store.put(key, bdir / filename).size)
    return rows


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


def _stopped(ctx: BuildContext, version_id: int, stop: Exception, log: BuildLog,
             timings: dict[str, float]) -> None:
    """A build stopped between stages (or mid-download): cancelled, or handed back."""
    if isinstance(stop, HandedBack):
        log.line("the service is stopping: back to the queue, to be built again")
        _quietly(ctx, version_id, State.queued, claimed_by=None, started_at=None)
        return
    log.stage = State.cancelled
    log.line("cancelled")
    _quietly(ctx, version_id, State.cancelled, finished_at=utcnow(),
             timings=timings, error="cancelled")


def _fail(ctx: BuildContext, version_id: int, error: str, timings: dict[str, float]) -> None:
    _quietly(ctx, version_id, State.failed, error=error, finished_at=utcnow(),
             timings=timings)


def _quietly(ctx: BuildContext, version_id: int, state: State, **changes: Any) -> None:
    """A build's last write: ``Lost`` means someone else already settled the version. If
    the database stays away past the retries, the runner's poll loop settles it later
    (``jobs.LocalRunner``: a version it claims that no thread builds)."""
    def write() -> bool:
        with ctx.db.session(write=True) as s:
            return move(s, version_id, state, claim=ctx.claim, **changes)

    retrying(write)


def _publish(ctx: BuildContext, version_id: int, where: tuple[str, str, int],
             artifacts: dict[str, tuple[str, int | None]], announce: Callable[[], None],
             **fields: Any) -> None:
    """Mark ready, record the artifacts and move ``current`` forward, in one transaction
    (``announce`` writes the log's last lines once nothing can refuse it, before the
    commit makes it visible); then swap the link."""
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
        become(v, State.ready, finished_at=utcnow())
        moved = current.point_at(env, v.number, forward_only=True)
    if moved:
        current.show(ctx.layout, *where)


__all__ = ["BuildContext", "run_build", "run_claimed"]
