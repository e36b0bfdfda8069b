"""Refuse builds that would take a namespace over its quota, with usage, quota and what
garbage collection would free in the message.

Two checks: at submission (nothing is stored if the namespace is already over, or the
environment's current size would take it over), and in the build once the lock is known,
before anything is installed: the estimate is the archive size, from the channel's
repodata, of every package no live version of the namespace already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.layout import Layout
from envyard.builder.lock import Lockfile, parse_lock
from envyard.builder.locker import package_sizes
from envyard.builder.network import strip_auth
from envyard.service import policy
from envyard.service.errors import QuotaExceeded
from envyard.service.gc import make_plan
from envyard.service.models import Environment, Namespace, Version
from envyard.service.settings import Settings
from envyard.service.usage import HAS_FILES, namespace_bytes


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _refuse(session: Session, settings: Settings, namespace: str, used: int, quota: int,
            estimate: int) -> QuotaExceeded:
    freeable = sum(r.bytes for r in make_plan(session, settings, namespaces=[namespace])
                   if r.delete)
    return QuotaExceeded(
        f"namespace '{namespace}' uses {_mb(used)} of its {_mb(quota)} quota and this build "
        f"needs about {_mb(estimate)} more; garbage collection would free {_mb(freeable)} "
        "(`envyard gc --dry-run` shows the plan)")


@dataclass(frozen=True)
class Estimate:
    """What a build would add to its namespace: the archive bytes of the packages no live
    version there has, beside what the namespace uses and its quota (None: no quota)."""

    used: int | None  # None, like the estimate, when there is no quota to fit in
    quota: int | None
    estimate: int | None

    @property
    def fits(self) -> bool:
        return self.quota is None or (self.used or 0) + (self.estimate or 0) <= self.quota

    def as_dict(self) -> dict[str, Any]:
        return {"used_bytes": self.used, "quota_bytes": self.quota,
                "estimate_bytes": self.estimate, "fits": self.fits}


def estimate_build(session: Session, settings: Settings, namespace: str, lock: Lockfile,
                   platform: str, version_id: int | None = None) -> Estimate:
    """The packages of ``lock`` the namespace lacks (``version_id``, the build itself,
    not counted as having them), sized from the channels' repodata."""
    quota = _quota(session, namespace)
    if quota is None:
        return Estimate(None, None, None)
    layout = Layout(settings.root)
    used = namespace_bytes(session, layout, namespace)
    have: set[str] = set()
    for text in session.scalars(
            select(Version.lock_text).join(Environment).join(Namespace)
            .where(Namespace.name == namespace, Version.id != (version_id or -1),
                   Version.lock_text.is_not(None),
                   Version.state.in_(list(HAS_FILES)))):
        assert text is not None  # the query leaves out versions without one
        have |= {p.filename for p in parse_lock(text).for_platform(platform)}
    channels = [strip_auth(c.url) for c in lock.metadata.channels]
    sizes = package_sizes(lock, platform, channels, layout.cache, settings.network)
    return Estimate(used, quota, sum(size for name, size in sizes.items() if name not in have))


def check_build_quota(session: Session, settings: Settings, namespace: str, version_id: int,
                      lock: Lockfile, platform: str) -> None:
    """Before installing: refuse if the packages the namespace lacks would exceed its quota."""
    found = estimate_build(session, settings, namespace, lock, platform, version_id)
    if found.quota is not None and not found.fits:
        raise _refuse(session, settings, namespace, found.used or 0, found.quota,
                      found.estimate or 0)


def _quota(session: Session, namespace: str) -> int | None:
    ns = session.scalar(select(Namespace).where(Namespace.name == namespace))
    return policy.quota(ns).value if ns is not None else None


def check_quota(session: Session, settings: Settings, namespace: str, name: str) -> None:
    quota = _quota(session, namespace)
    if quota is None:
        return
    used = namespace_bytes(session, Layout(settings.root), namespace)
    estimate = session.scalar(
        select(Version.prefix_bytes).join(Environment).join(Namespace)
        .where(Namespace.name == namespace, Environment.name == name,
               Version.number == Environment.current_version)) or 0
    if used + estimate <= quota and used < quota:
        return
    raise _refuse(session, settings, namespace, used, quota, estimate)
