"""The Dask cluster's pin set in the service: stored, checked against every build, followed.

The newest ``cluster_pins`` row is in force; it is seeded from the ``dask_pins`` setting (a
pin file) on first start, replaced through the API, or moved by an applied upgrade.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.dask import PinSet, pins_from_constraints, pins_from_lock, read_pins
from envyard.builder.dask import constraints as dask_constraints
from envyard.builder.lock import parse_lock
from envyard.service import audit, policy
from envyard.service.db import Database
from envyard.service.models import ClusterPins, Environment, Namespace, Version
from envyard.service.settings import Settings


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
