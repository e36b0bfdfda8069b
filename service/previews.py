"""Previews: a spec solved as its build would be, shown as a diff, kept to be built as is.

``make_preview`` checks the spec, solves it the way the build would (on the current
version's lock unless ``update="full"``, within the cluster's pins when the environment
follows them), diffs it against the current version, checks the Dask pins and the quota,
and keeps the lock under a random id for ``preview_seconds``. A submission naming the id
(``take``) builds exactly that lock, whatever the channel has since; once expired it is a
410. Rows a day past their expiry are swept when new previews are made.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from envyard.builder.dask import check as dask_check
from envyard.builder.diff import diff_locks
from envyard.builder.layout import Layout
from envyard.builder.lock import Lockfile, LockMeta, dump_lock
from envyard.service import policy
from envyard.service.auth import Principal
from envyard.service.catalog import version_lock
from envyard.service.dask import build_pins
from envyard.service.db import Database
from envyard.service.errors import Gone, NotFound
from envyard.service.inputs import UploadChecker, checked_spec, rules_for, utf8
from envyard.service.models import Environment, Namespace, Preview, Version, utcnow
from envyard.service.quota import estimate_build
from envyard.service.settings import Settings
from envyard.service.stages import lock_spec

#: How long an expired preview still answers 410 (not 404) before it is swept.
SWEEP_AFTER = dt.timedelta(days=1)


def _live_environment(session: Session, namespace: str, name: str
                      ) -> tuple[Namespace | None, Environment | None]:
    ns = session.scalar(select(Namespace).where(Namespace.name == namespace))
    env = None if ns is None else session.scalar(select(Environment).where(
        Environment.namespace_id == ns.id, Environment.name == name,
        Environment.deleted_at.is_(None)))
    return ns, env


def _empty(platform: str) -> Lockfile:
    return Lockfile(metadata=LockMeta(content_hash={}, channels=[], platforms=[platform],
                                      sources=[]), package=[])


def make_preview(db: Database, settings: Settings, checker: UploadChecker, who: Principal,
                 where: tuple[str, str], body: bytes | bytearray, update: str
                 ) -> dict[str, Any]:
    """Solve, diff, check and keep; nothing is built. Runs in a worker thread (a solve)."""
    namespace, name = where
    with db.session() as s:
        rules = rules_for(s, settings, namespace)
    source = f"{namespace}/{name}.yml"
    checker.check("spec", body, rules, source=source)  # in a child, under its limits
    text = utf8(body)
    spec = checked_spec(text, rules, source=source)
    platform = settings.build_platform()
    with db.session() as s:
        ns, env = _live_environment(s, namespace, name)
        pins, extra = build_pins(s, settings, env, ns)
        dask_policy = policy.dask_policy(ns if ns is not None else Namespace()).value
        system = policy.namespace_system(ns)
        base_number = env.current_version if env is not None else None
        base = s.scalar(select(Version).where(
            Version.environment_id == env.id, Version.number == base_number)
        ) if env is not None and base_number is not None else None
        current = version_lock(base) if base is not None and base.lock_text else None
    solve = "minimal" if update == "minimal" and current is not None else "full"
    lock = lock_spec(settings, Layout(settings.root), spec, platform, extra,
                     current if solve == "minimal" else None, system=system)
    lock_text = dump_lock(lock)
    report = dask_check(lock, platform, pins) if pins is not None else None
    with db.session() as s:
        estimate = estimate_build(s, settings, namespace, lock, platform)
    now = utcnow()
    row = Preview(id=secrets.token_urlsafe(18), namespace=namespace, name=name,
                  spec_text=text, lock_text=lock_text, solve=solve, base_version=base_number,
                  created_by=who.name[:100], created_at=now,
                  expires_at=now + dt.timedelta(seconds=settings.preview_seconds))
    with db.session(write=True) as s:
        s.execute(delete(Preview).where(Preview.expires_at < now - SWEEP_AFTER))
        s.add(row)
    dask = None if report is None else {
        **report.as_dict(), "policy": dask_policy,
        "builds": not (report.applies and not report.ok and dask_policy == "block")}
    return {"preview": row.id, "namespace": namespace, "name": name,
            "expires_at": row.expires_at, "solve": solve, "base_version": base_number,
            "lock_url": f"/api/v1/environments/{namespace}/{name}/previews/{row.id}/lock",
            "diff": diff_locks(current or _empty(platform), lock, platform).as_dict(),
            "dask": dask, "quota": estimate.as_dict()}


def find_preview(session: Session, where: tuple[str, str], preview_id: str) -> Preview:
    """The preview ``preview_id`` of this environment: 404 if it has no such preview (an
    id of another environment is not found here), 410 once it has expired."""
    row = session.get(Preview, preview_id)
    if row is None or (row.namespace, row.name) != where:
        raise NotFound(f"no preview {preview_id} of {where[0]}/{where[1]} (make one with "
                       "POST …/preview)")
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(
        tzinfo=dt.UTC)  # SQLite drops the zone; stored values are UTC
    if expires <= utcnow():
        raise Gone(f"preview {preview_id} expired at {expires.isoformat()}; preview the "
                   "spec again (the channel may have changed since)")
    return row


__all__ = ["find_preview", "make_preview"]
