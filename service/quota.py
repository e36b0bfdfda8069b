"""Refuse a build before it starts when the namespace would go over its quota.

The estimate for the new version is the size of the environment's current version (a new
version of an environment is about as big as the last one); the message names the usage,
the quota and what garbage collection would free.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from builder.layout import Layout
from service.errors import ServiceError
from service.gc import make_plan
from service.models import Environment, Namespace, Version
from service.settings import Settings
from service.usage import namespace_bytes


class QuotaExceeded(ServiceError):
    status = 409


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def check_quota(session: Session, settings: Settings, namespace: str, name: str) -> None:
    quota = session.scalar(select(Namespace.quota_bytes).where(Namespace.name == namespace))
    if quota is None:
        return
    used = namespace_bytes(session, Layout(settings.root), namespace)
    estimate = session.scalar(
        select(Version.prefix_bytes).join(Environment).join(Namespace)
        .where(Namespace.name == namespace, Environment.name == name,
               Version.number == Environment.current_version)) or 0
    if used + estimate <= quota and used < quota:
        return
    freeable = sum(r.bytes for r in make_plan(session, settings, namespace=namespace)
                   if r.delete)
    raise QuotaExceeded(
        f"namespace '{namespace}' uses {_mb(used)} of its {_mb(quota)} quota and this build "
        f"needs about {_mb(estimate)} more; garbage collection would free {_mb(freeable)} "
        "(`envyard gc --dry-run` shows the plan)")
