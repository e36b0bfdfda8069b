"""Garbage collection (plan and apply) and storage usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from envyard.builder.layout import Layout
from envyard.service import leftovers
from envyard.service.api.deps import DbDep, PrincipalDep, SettingsDep
from envyard.service.api.schemas import GcDone, Leftovers, NamespaceUsage, PlanRow
from envyard.service.gc import apply_plan, make_plan
from envyard.service.models import Namespace, Role
from envyard.service.usage import usage_report

router = APIRouter(prefix="/api/v1", tags=["gc"])


@router.get("/gc/plan", response_model=list[PlanRow])
def gc_plan(db: DbDep, who: PrincipalDep, settings: SettingsDep,
            namespace: str | None = Query(None, max_length=64)) -> list[dict[str, Any]]:
    """One row per version of the namespaces the caller may read: kept or deleted, by
    which rule, and the bytes it would free."""
    namespaces = who.readable()
    if namespace is not None:
        who.require(namespace, Role.viewer)
        namespaces = {namespace}
    if namespaces == set():
        return []
    with db.session() as s:
        rows = make_plan(s, settings, namespaces=namespaces)
    return [r.as_dict() for r in rows]


@router.post("/gc", response_model=GcDone)
def gc_apply(db: DbDep, who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Apply the plan everywhere (needs admin on every namespace: role on '*')."""
    who.require("*", Role.admin)
    return apply_plan(db, settings, who=who)


@router.get("/usage/leftovers", response_model=Leftovers)
def usage_leftovers(who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Files killed processes left on the volume (staging, old prefixes, GC trash, partial
    packs and downloads), each removed by the next GC or start once no one owns it.
    Needs a role on '*': these are the volume's, not a namespace's."""
    who.require("*", Role.viewer, anonymous=False)
    layout = Layout(settings.root)
    found = leftovers.find(layout)
    return {"bytes": sum(f.bytes for f in found), "files": [f.as_dict(layout) for f in found]}


@router.get("/usage", response_model=dict[str, NamespaceUsage])
def usage(db: DbDep, who: PrincipalDep, settings: SettingsDep,
          namespace: str | None = Query(None, max_length=64, description="Only this "
                                        "namespace (its page: one scan, not every one)")
          ) -> dict[str, Any]:
    """Bytes per namespace the caller may read and per environment (a file shared by
    prefixes counts once), with each namespace's quota (an empty one with a quota too)."""
    namespaces = who.readable()
    if namespace is not None:
        who.require(namespace, Role.viewer)
        namespaces = {namespace}
    if namespaces == set():
        return {}
    with db.session() as s:
        report = usage_report(s, Layout(settings.root), namespaces)
        quotas = dict(s.execute(select(Namespace.name, Namespace.quota_bytes)).all())
    empty = {"bytes": 0, "environments": {}}
    shown = set(report) | {ns for ns, q in quotas.items() if q is not None
                           and (namespaces is None or ns in namespaces)}
    return {ns: {**report.get(ns, empty), "quota_bytes": quotas.get(ns)}
            for ns in sorted(shown)}
