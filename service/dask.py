"""The Dask cluster's pin set in the service: stored, checked against every build, followed.

The newest ``cluster_pins`` row is in force; it is seeded from the ``dask_pins`` setting (a
pin file) on first start, replaced through the API, or moved by an applied upgrade.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from builder.dask import PinSet, read_pins
from service.db import Database
from service.models import ClusterPins
from service.settings import Settings


def current_pins(session: Session) -> PinSet | None:
    row = session.scalar(select(ClusterPins).order_by(ClusterPins.id.desc()).limit(1))
    return PinSet(dict(row.versions), row.source) if row else None


def set_pins(session: Session, pins: PinSet) -> None:
    session.add(ClusterPins(versions=dict(pins.versions), source=pins.source))


def seed_pins(db: Database, settings: Settings) -> None:
    if settings.dask_pins is None:
        return
    with db.session(write=True) as s:
        if current_pins(s) is None:
            set_pins(s, read_pins(settings.dask_pins))
