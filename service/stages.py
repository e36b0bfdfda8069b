"""A build as a table of stages: read, solve, check, install, pack, publish, image.

``STAGES`` is the order; ``run_stages`` runs them the same way (a cancel checked before
each, the version moved to the stage's state, the timed ones timed and logged). A stage is
a small function of one ``Build``, which carries what the version was given and what each
stage hands the next: the spec parsed once, the lock as the solver made it. Prefixes are
shared by fingerprint (identical locks install once); identical specs solving at the same
time share one solve.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from envyard.builder.aio import call_with_timeout
from envyard.builder.dask import PinSet
from envyard.builder.dask import check as dask_check
from envyard.builder.errors import DaskMismatch, PackError
from envyard.builder.fetch import Sources
from envyard.builder.install import InstallResult, fingerprint, install_lock
from envyard.builder.kernels import has_ipykernel, has_irkernel
from envyard.builder.layout import Layout, guard_of, point
from envyard.builder.lock import DEFAULT_CATEGORIES, Lockfile, dump_lock, parse_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.pack import pack_prefix
from envyard.builder.spec import EnvSpec
from envyard.builder.virtual import SystemRequirements
from envyard.service import current
from envyard.service.buildlog import BuildLog
from envyard.service.buildstate import (
    BuildContext,
    Solved,
    boundary,
    publish,
    record,
)
from envyard.service.inputs import InputRules, checked_lock, checked_spec, rules_for
from envyard.service.models import utcnow
from envyard.service.quota import check_build_quota
from envyard.service.settings import Settings
from envyard.service.storage import build_key, pack_key
from envyard.service.transitions import (
    State,
)
from envyard.service.usage import inode_table

logger = logging.getLogger("envyard")


#: How long a finished solve answers identical submissions (the channel may change later).
SOLVE_REUSE_SECONDS = 60.0


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
    base_text: str | None = None  # the lock a minimal-change solve keeps what it can of
    from_preview: bool = False  # the lock is given: the preview's, built as shown
    #: the system assumed where the spec says nothing: its namespace's (``policy``)
    system: SystemRequirements = field(default_factory=SystemRequirements)
    platform: str = ""
    rules: InputRules | None = None
    spec: EnvSpec | None = None
    lock: Lockfile | None = None
    fp: str = ""
    built: InstallResult | None = None
    pack_bytes: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stage: str = "read"  # the stage running (a failure or cancel records it)


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
    record(b.ctx, b.version_id, started_at=utcnow())
    b.platform = b.ctx.settings.build_platform()
    with b.ctx.db.session() as s:
        b.rules = rules_for(s, b.ctx.settings, b.where[0])
    where = b.where
    if b.spec_text is not None:
        b.spec = checked_spec(b.spec_text, b.rules, source=f"{where[0]}/{where[1]}.yml")
    return None


def _sources(b: Build) -> Sources:
    """Where the build's packages come from: a spec's channels (else the defaults), a
    pushed lock's own channels (checked against the allow-list at ``check``); a mirror
    that fails is written in the build's log."""
    assert b.rules is not None and b.lock is not None
    sources = b.rules.lock_sources(b.lock) if b.spec is None else \
        b.ctx.settings.package_sources(b.ctx.settings.spec_channels(b.spec.channels))
    return replace(sources, report=b.log.line)


def lock_spec(settings: Settings, layout: Layout, spec: EnvSpec, platform: str,
              extra: list[str], base: Lockfile | None,
              report: Callable[[str], None] | None = None,
              system: SystemRequirements | None = None) -> Lockfile:
    """Solve a spec as a build does (a preview asks the same): its channels (else the
    service's defaults) through the mirrors, every platform it names and the service's
    own, the service's limits, within ``extra`` constraints, keeping what it can of
    ``base``. The system is the spec's own word over ``system`` (its namespace's), within
    the service's ``virtual_packages_allowed`` (checked again here: settings change)."""
    system = system or SystemRequirements()
    spec.system.over(system).check(settings.virtual_packages_allowed, platform)
    return lock_env(spec, LockOptions(
        channels=settings.spec_channels(spec.channels),
        platforms=list(dict.fromkeys([*spec.platforms, platform])), constraints=extra,
        timeout=settings.solve_timeout, cache_dir=layout.cache, network=settings.network,
        progress=report, pip_index=settings.pip_index, base=base, system=system))


def _solve(b: Build) -> str:
    assert b.spec is not None and b.spec_text is not None
    ctx, channels = b.ctx, b.ctx.settings.spec_channels(b.spec.channels)
    b.log.line(f"solving for {', '.join(dict.fromkeys([*b.spec.platforms, b.platform]))}"
               f" on {', '.join(channels)}")
    if b.extra:
        b.log.line(f"solving within the cluster's pins: {', '.join(b.extra)}")
    base = None
    if b.base_text is not None:
        base = parse_lock(b.base_text, source="the current version's lock")
        b.log.line("keeping the current version's packages where the spec allows "
                   "(submit with update=full for a fresh solve)")
    assumed = b.spec.system.over(b.system)
    if assumed.said():
        b.log.line(f"assuming the system has {assumed}")
    key = hashlib.sha256(json.dumps([b.spec_text, channels, b.platform, b.extra,
                                     b.base_text, assumed.said()]).encode()).hexdigest()
    spec = b.spec

    def solve() -> tuple[str, Lockfile]:
        lock = lock_spec(ctx.settings, ctx.layout, spec, b.platform, b.extra, base,
                         b.log.line, system=b.system)
        return dump_lock(lock), lock

    (b.lock_text, b.lock), shared = _solve_once(ctx, key, solve)
    record(ctx, b.version_id, lock_text=b.lock_text)
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
        record(b.ctx, b.version_id, dask_report=report.as_dict())
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
        sources=_sources(b),
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
    kernel = has_ipykernel(built.prefix) or has_irkernel(built.prefix)

    def announce() -> None:  # once publishing cannot be refused, before it commits:
        log.stage = State.ready  # a follower stops reading at "ready"
        if not kernel:
            log.line("no kernel: neither ipykernel nor r-irkernel is in this environment")
        log.line("ready")

    publish(ctx, b.version_id, where, artifacts, announce, timings=b.timings,
             packages=packages, prefix_bytes=prefix_bytes, pack_bytes=b.pack_bytes)
    logger.info("ready: %d packages, %s", len(packages), b.timings)
    return None


def _image_stage(b: Build) -> None:
    assert b.built is not None and b.lock_text is not None
    current.publish_image(b.ctx.db, b.ctx.settings, b.ctx.layout, b.version_id, b.where,
                          b.built.prefix, b.lock_text, b.log)
    return None


#: A build, in order. A pushed lock and a preview's lock skip the solve; without packs
#: there is no packing.
STAGES = (
    Stage("read", _read),
    Stage("solve", _solve, State.solving,
          applies=lambda b: b.kind == "spec" and not b.from_preview, timed=True),
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
            boundary(b.ctx, b.cancel, b.version_id)
        b.stage = stage.name
        if stage.state is not None:
            b.log.stage = stage.state
            record(b.ctx, b.version_id, stage.state, **stage.fields(b))
        logger.debug("stage %s", stage.name)
        start = time.perf_counter()
        said = stage.run(b)
        if stage.timed:
            b.timings[stage.name] = seconds = round(time.perf_counter() - start, 3)
            if said:
                b.log.line(f"{said} in {seconds} s")


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




__all__ = ["STAGES", "Build", "Stage", "lock_spec", "run_stages"]
