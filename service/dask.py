"""The Dask cluster's pin set in the service: stored, checked against every build, followed.

The newest ``cluster_pins`` row is in force; it is seeded from the ``dask_pins`` setting (a
pin file) on first start, replaced through the API, or moved by an applied upgrade.
``cluster_environments`` says which environments a Dask cluster may run (a gateway offers
them, ``envyard.service.gateway``): those with ``distributed`` whose current lock passes
the pins in force.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from envyard.builder.dask import (
    DaskReport,
    PinSet,
    check,
    pins_from_constraints,
    pins_from_lock,
    read_pins,
)
from envyard.builder.dask import constraints as dask_constraints
from envyard.builder.layout import Layout
from envyard.builder.lock import parse_lock
from envyard.service import audit, policy
from envyard.service.catalog import version_lock
from envyard.service.db import Database
from envyard.service.hub_auth import grants_for, shared_roles, with_shares
from envyard.service.models import (
    ClusterPins,
    Environment,
    Namespace,
    Role,
    Version,
    VersionPackage,
)
from envyard.service.settings import Settings
from envyard.service.transitions import State


def current_pins(session: Session, settings: Settings | None = None) -> PinSet | None:
    """The pins in force: the cluster environment's current lock when the ``dask_pins_env``
    setting names one, else the newest stored pin set."""
    if settings is not None and settings.dask_pins_env:
        ns, _, name = settings.dask_pins_env.partition("/")
        lock_text = session.scalar(
            select(Version.lock_text).join(Environment, Version.environment_id == Environment.id)
            .join(Namespace, Environment.namespace_id == Namespace.id)
            .where(Namespace.name == ns, Environment.name == name,
                   Version.number == Environment.current_version))
        if lock_text:
            return pins_from_lock(parse_lock(lock_text), settings.build_platform(),
                                  f"the lock of {settings.dask_pins_env}")
    row = session.scalar(select(ClusterPins).order_by(ClusterPins.id.desc()).limit(1))
    return PinSet(dict(row.versions), row.source) if row else None


def build_pins(session: Session, settings: Settings, env: Environment | None,
               ns: Namespace | None, proposed: list[str] | None = None
               ) -> tuple[PinSet | None, list[str]]:
    """The pins a build of ``env`` is checked against, and the solver constraints it is
    solved within (the pins, when the environment follows the cluster or the build is for
    a ``proposed`` move); a build and its preview ask this the same way."""
    pins = current_pins(session, settings)
    if proposed:  # built to move the cluster: checked against the pins it moves to
        pins = pins_from_constraints(list(proposed), "the proposed pins")
    follow = policy.dask_follow(env, ns if ns is not None else Namespace()).value
    return pins, dask_constraints(pins) if pins and (follow or proposed) else []


def set_pins(session: Session, pins: PinSet) -> None:
    session.add(ClusterPins(versions=dict(pins.versions), source=pins.source))


def seed_pins(db: Database, settings: Settings) -> None:
    if settings.dask_pins is None:
        return
    with db.session(write=True) as s:
        if current_pins(s) is None:
            pins = read_pins(settings.dask_pins)
            set_pins(s, pins)
            audit.record(s, audit.SERVICE, audit.Action.dask_pins,
                         versions=dict(pins.versions), source="setting dask_pins")


#: Reports of (version row, pins) already checked: a version's lock never changes, so a
#: listing asked again (every cluster the gateway starts) re-reads no lock.
_CHECKED: OrderedDict[tuple[int, tuple[tuple[str, str], ...]], DaskReport] = OrderedDict()
_CHECKED_LOCK = threading.Lock()
CHECKED_KEPT = 4096


@dataclass(frozen=True)
class ClusterEnvironment:
    """An environment a Dask cluster could run: its current version, where that is on the
    volume and in the registry, and whether the gateway may offer it (``problem``: why
    not, in one line, as a refused cluster's error says it)."""

    namespace: str
    name: str
    version: int
    prefix: str
    image: str | None
    gateway: bool
    verdict: str
    problem: str | None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def as_dict(self) -> dict[str, object]:
        return {"environment": self.ref, "namespace": self.namespace, "name": self.name,
                "version": self.version, "prefix": self.prefix, "image": self.image,
                "gateway": self.gateway, "verdict": self.verdict, "problem": self.problem,
                "offered": self.problem is None}


def _report(version: Version, platform: str, pins: PinSet) -> DaskReport:
    key = (version.id, tuple(sorted(pins.versions.items())))
    with _CHECKED_LOCK:
        if key in _CHECKED:
            _CHECKED.move_to_end(key)
            return _CHECKED[key]
    report = check(version_lock(version), platform, pins)
    with _CHECKED_LOCK:
        _CHECKED[key] = report
        while len(_CHECKED) > CHECKED_KEPT:
            _CHECKED.popitem(last=False)
    return report


def _why_refused(ref: str, report: DaskReport, pins: PinSet) -> str:
    """The verdict in one line (a gateway's error is an HTTP reason phrase)."""
    parts = [f"{v.package} {v.verdict} (environment {v.env or '-'}, cluster "
             f"{v.cluster or '-'})" for v in report.blocking]
    if report.lockstep:
        parts.append(report.lockstep)
    source = f" ({pins.source})" if pins.source else ""
    return f"{ref} fails envyard's Dask pin check against the cluster's pins{source}: " \
        + "; ".join(parts)


def cluster_environments(session: Session, settings: Settings,
                         readable: set[str] | None) -> list[ClusterEnvironment]:
    """The environments in ``readable`` namespaces (None: all) whose current version has
    ``distributed``, each checked against the pins in force now (not the pins of its
    build: the cluster may have moved since), by namespace and name."""
    if readable is not None and not readable:
        return []
    has = aliased(VersionPackage)
    query = (select(Namespace.name, Environment.name, Version)
             .join(Environment, Environment.namespace_id == Namespace.id)
             .join(Version, (Version.environment_id == Environment.id)
                   & (Version.number == Environment.current_version))
             .join(has, (has.version_id == Version.id) & (has.name == "distributed"))
             .where(Environment.deleted_at.is_(None), Version.state == State.ready)
             .order_by(Namespace.name, Environment.name))
    if readable is not None:
        query = query.where(Namespace.name.in_(sorted(readable)))
    rows = session.execute(query).all()
    with_gateway = set(session.scalars(select(VersionPackage.version_id).where(
        VersionPackage.name == "dask-gateway",
        VersionPackage.version_id.in_([v.id for _, _, v in rows]))))
    pins = current_pins(session, settings)
    layout, platform = Layout(settings.root), settings.build_platform()
    out = []
    for ns, name, version in rows:
        ref = f"{ns}/{name}"
        problem: str | None
        if pins is None:
            verdict, problem = "unchecked", (
                f"{ref} cannot be checked: envyard has no Dask cluster pins (setting "
                "dask_pins, or PUT /api/v1/dask/pins)")
        else:
            report = _report(version, platform, pins)
            verdict = "ok" if report.ok else "mismatch"
            problem = None if report.ok else _why_refused(ref, report, pins)
        gateway = version.id in with_gateway
        if problem is None and not gateway:
            problem = (f"{ref} has no dask-gateway package: its scheduler cannot load "
                       "dask_gateway.scheduler_preload (add dask-gateway to its spec)")
        image = version.image or {}
        out.append(ClusterEnvironment(
            ns, name, version.number,
            os.path.realpath(layout.version_link(ns, name, version.number)),
            image.get("reference") if image.get("state") == "ready" else None,
            gateway, verdict, problem))
    return out


def hub_user_roles(session: Session, settings: Settings, user: str, groups: list[str],
                   admin: bool) -> dict[str, Role]:
    """The roles hub ``user`` in ``groups`` holds, by the very rule a hub user's own
    request is decided by (the grants, then what shares add)."""
    hub = settings.hub
    roles = grants_for(user, admin, dict(hub.grants), hub.admins, groups,
                       {g: dict(r) for g, r in hub.group_grants.items()})
    return with_shares(roles, shared_roles(session, user, groups))
