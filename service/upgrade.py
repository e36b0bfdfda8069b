"""The Dask upgrade what-if: re-lock every environment that talks to the cluster against
proposed pins, in parallel, publishing nothing; and its application, which moves the
cluster's pins only once every such environment has a ready version on them. The move
waits in the database (``PinMove``), settled by whichever runner polls next, so a restart
between applying and moving loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from envyard.builder.dask import PinSet, env_versions
from envyard.builder.dask import constraints as dask_constraints
from envyard.builder.errors import IndexUnreachable, SolveError, SpecError
from envyard.builder.layout import Layout
from envyard.builder.lock import parse_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec
from envyard.builder.virtual import SystemRequirements
from envyard.service import audit
from envyard.service.auth import Principal
from envyard.service.catalog import new_version
from envyard.service.dask import set_pins
from envyard.service.db import Database
from envyard.service.errors import Conflict
from envyard.service.models import Environment, Namespace, PinMove, Version, utcnow
from envyard.service.settings import Settings
from envyard.service.transitions import State

SHOWN = ("python", "dask", "distributed")
logger = logging.getLogger("envyard")


def _followers(db: Database, platform: str, namespaces: Collection[str] | None
               ) -> list[tuple[str, str, str | None, dict[str, str]]]:
    """(namespace, name, spec text, versions) of every current version with distributed,
    in ``namespaces`` (None: all)."""
    query = (select(Namespace.name, Environment.name, Version.spec_text, Version.lock_text)
             .select_from(Environment)
             .join(Namespace, Environment.namespace_id == Namespace.id)
             .join(Version, (Version.environment_id == Environment.id)
                   & (Version.number == Environment.current_version))
             .where(Version.state == State.ready))
    if namespaces is not None:
        query = query.where(Namespace.name.in_(list(namespaces)))
    with db.session() as s:
        rows = s.execute(query).all()
    out = []
    for ns, name, spec_text, lock_text in rows:
        versions = env_versions(parse_lock(lock_text), platform) if lock_text else {}
        if "distributed" in versions:
            out.append((ns, name, spec_text, versions))
    return sorted(out)


def what_if(db: Database, settings: Settings, pins: PinSet,
            namespaces: Collection[str] | None = None) -> list[dict[str, Any]]:
    """One row per environment (of ``namespaces``; None: all): current and would-be
    versions, or the conflict. Only those environments are re-solved."""
    platform = settings.build_platform()
    layout = Layout(settings.root)
    extra = dask_constraints(pins)
    with db.session() as s:  # each namespace's system, where a spec says nothing of it
        systems = {n: SystemRequirements.of(v) for n, v in s.execute(
            select(Namespace.name, Namespace.system_requirements))}

    def relock(item: tuple[str, str, str | None, dict[str, str]]) -> dict[str, Any]:
        ns, name, spec_text, versions = item
        row: dict[str, Any] = {"environment": f"{ns}/{name}",
                               "current": {k: versions.get(k) for k in SHOWN},
                               "would_be": None, "solvable": False, "conflict": None}
        if spec_text is None:
            row["conflict"] = "built from a pushed lock: re-lock it where it was made"
            return row
        spec = parse_spec(spec_text, source=f"{ns}/{name}.yml")
        try:
            lock = lock_env(spec, LockOptions(
                channels=settings.spec_channels(spec.channels), platforms=[platform],
                constraints=extra, timeout=settings.solve_timeout, cache_dir=layout.cache,
                network=settings.network, pip_index=settings.pip_index,
                system=systems.get(ns, SystemRequirements())))
        except (SolveError, SpecError, IndexUnreachable) as exc:  # this row only
            row["conflict"] = str(exc).split("\n", 1)[-1].strip()[:2000]
            return row
        new = env_versions(lock, platform)
        row.update(would_be={k: new.get(k) for k in SHOWN}, solvable=True)
        return row

    # as many solves as builds at once, not one per core: builds and requests share them
    with ThreadPoolExecutor(max_workers=settings.build_concurrency) as pool:
        return list(pool.map(relock, _followers(db, platform, namespaces)))


def apply_upgrade(db: Database, settings: Settings, who: Principal, pins: PinSet,
                  submit: Callable[[int], None]) -> dict[str, Any]:
    """Submit a version of every follower on the new pins; move the pins when all are
    ready. Audited as ``who``'s upgrade and a submission in each namespace it builds in."""
    rows = what_if(db, settings, pins)
    blocked = [r for r in rows if not r["solvable"]]
    if blocked:
        raise Conflict("not applied: these environments cannot move to the new pins: " +
                       "; ".join(f"{r['environment']}: {r['conflict']}" for r in blocked))
    extra = dask_constraints(pins)
    submitted: list[tuple[int, str, int]] = []
    with db.session(write=True) as s:
        for r in rows:
            ns, name = r["environment"].split("/")
            spec_text = s.scalar(select(Version.spec_text).join(Environment).join(
                Namespace, Environment.namespace_id == Namespace.id).where(
                Namespace.name == ns, Environment.name == name,
                Version.number == Environment.current_version,
                Environment.deleted_at.is_(None)))
            if spec_text is None:  # deleted (or emptied) during the what-if: not moved
                continue
            v, _ = new_version(s, ns, name, kind="spec", spec_text=spec_text,
                               submitted_by=who.name[:100])
            v.constraints = extra
            submitted.append((v.id, r["environment"], v.number))
            audit.record(s, who, audit.Action.submit, ns, name, v.number, dask_upgrade=True)
        s.flush()
        move = PinMove(versions=dict(pins.versions), source=pins.source,
                       version_ids=[version_id for version_id, _, _ in submitted])
        s.add(move)
        s.flush()
        audit.record(s, who, audit.Action.dask_upgrade, upgrade=move.id,
                     versions=dict(pins.versions), submitted=len(submitted))
    for version_id, _, _ in submitted:
        submit(version_id)
    return {"rows": rows, "submitted": [{"environment": e, "version": n}
                                        for _, e, n in submitted],
            "pins": "move when every submitted version is ready"}


def settle_pin_moves(db: Database) -> list[str]:
    """Move the pins of every applied upgrade whose versions are all ready; give one up
    when any ended otherwise. Each runner's poll calls this (any process may: a move is
    settled once, under the row's lock). Returns the outcomes."""
    outcomes: list[str] = []
    with db.session() as s:  # every poll asks; a write (SQLite's one lock) only if needed
        if s.scalar(select(PinMove.id).where(PinMove.settled_at.is_(None)).limit(1)) is None:
            return outcomes
    with db.session(write=True) as s:
        for move in s.scalars(select(PinMove).where(PinMove.settled_at.is_(None))
                              .with_for_update(skip_locked=True)):
            states = set(s.scalars(select(Version.state).where(
                Version.id.in_(list(move.version_ids)))))
            if not all(State(st).terminal for st in states):
                continue
            if states <= {State.ready}:
                set_pins(s, PinSet(dict(move.versions), move.source))
                move.outcome = "moved"
                audit.record(s, audit.SERVICE, audit.Action.dask_pins,
                             versions=dict(move.versions), source=move.source,
                             upgrade=move.id)
            else:
                move.outcome = "abandoned"  # a version failed or was cancelled
                logger.warning("dask upgrade %s not applied: a version it built did not "
                               "become ready", move.id)
            move.settled_at = utcnow()
            outcomes.append(move.outcome)
    return outcomes
