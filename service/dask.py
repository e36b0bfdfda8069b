"""The Dask cluster's pin set in the service: stored, checked against every build, followed.

The newest ``cluster_pins`` row is in force; it is seeded from the ``dask_pins`` setting (a
pin file) on first start, replaced through the API, or moved by an applied upgrade.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.dask import PinSet, pins_from_lock, read_pins
from envyard.builder.lock import parse_lock
from envyard.service import audit
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
