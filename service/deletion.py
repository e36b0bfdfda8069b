"""Deleting environments: soft, and at once where users look.

A delete takes the environment out of listings and its kernel off the volume at once,
withdraws ``current``, requests a cancel of its running builds, and marks it deleted; GC
then collects every version (files, packs, kernelspecs, images), as it would collected
versions, keeping each version's spec, lock and log as the record. Held versions refuse
the delete unless it is forced (which releases them).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from envyard.builder.layout import Layout
from envyard.service import audit, current
from envyard.service.auth import Principal
from envyard.service.db import Database
from envyard.service.errors import Conflict, NotFound
from envyard.service.models import Environment, Namespace, Version, utcnow
from envyard.service.settings import Settings
from envyard.service.transitions import LIVE, State, request_cancel


def delete_environments(db: Database, settings: Settings, who: Principal, namespace: str,
                        name: str | None = None, *, force: bool = False) -> dict[str, Any]:
    """Delete ``namespace/name``, or every environment of ``namespace`` (audited as
    one delete of the environment, or of the namespace)."""
    now = utcnow()
    with db.session(write=True) as s:
        # the versions' rows first, then the environments', as publishing takes them
        s.execute(select(Version.id).join(Environment).join(Namespace)
                  .where(Namespace.name == namespace, Environment.deleted_at.is_(None),
                         *([Environment.name == name] if name is not None else []))
                  .order_by(Version.id).with_for_update(of=Version))
        query = (select(Environment).join(Namespace)
                 .where(Namespace.name == namespace, Environment.deleted_at.is_(None))
                 .with_for_update())
        if name is not None:
            query = query.where(Environment.name == name)
        envs = list(s.scalars(query))
        if not envs:
            raise NotFound(f"no environment {namespace}/{name}" if name
                           else f"no namespace {namespace} with environments")
        held = [f"{namespace}/{env.name}/{v.number}" for env in envs for v in env.versions
                if v.held and v.state not in (State.deleting, State.deleted)]
        if held and not force:
            raise Conflict(f"held versions would be collected: {', '.join(held)}; unhold "
                           "them, or delete with force=true")
        cancelled = 0
        for env in envs:
            for v in env.versions:
                v.held = False
                if v.state in LIVE:
                    request_cancel(s, v, now)
                    cancelled += 1
            current.withdraw(env)
            env.deleted_at, env.collect_through = now, env.version_counter
        names = [env.name for env in envs]
        versions = sum(len(env.versions) for env in envs)
        if name is not None:
            audit.record(s, who, audit.Action.delete_environment, namespace, name,
                         force=force, versions=versions, released_holds=len(held))
        else:
            audit.record(s, who, audit.Action.delete_namespace, namespace,
                         force=force, environments=names[:100], versions=versions,
                         released_holds=len(held))
    layout = Layout(settings.root)
    for each in names:
        current.hide(layout, namespace, each)
    return {"namespace": namespace, "deleted": names, "versions": versions,
            "released_holds": held, "cancelled_builds": cancelled}


def deletion_plan(db: Database, settings: Settings, namespace: str,
                  name: str) -> dict[str, Any]:
    """What deleting ``namespace/name`` would do, deleting nothing: the versions GC would
    then collect and the bytes that frees, the holds it releases, the builds it cancels."""
    from envyard.service.gc import make_plan

    with db.session() as s:
        env = s.scalar(select(Environment).join(Namespace).where(
            Namespace.name == namespace, Environment.name == name,
            Environment.deleted_at.is_(None)))
        if env is None:
            raise NotFound(f"no environment {namespace}/{name}")
        held = [v.number for v in env.versions
                if v.held and v.state not in (State.deleting, State.deleted)]
        building = [v.number for v in env.versions if v.state in LIVE]
        rows = [r for r in make_plan(s, settings, namespaces={namespace},
                                     deleting=(namespace, name)) if r.name == name]
    return {"namespace": namespace, "name": name,
            "versions": [r.as_dict() for r in rows], "bytes": sum(r.bytes for r in rows),
            "held": held, "building": building}


__all__ = ["delete_environments", "deletion_plan"]
