"""Garbage collection (plan and apply) and storage usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from builder.layout import Layout
from service.api.deps import DbDep, PrincipalDep, SettingsDep
from service.gc import apply_plan, make_plan
from service.models import Namespace, Role
from service.usage import usage_report

router = APIRouter(prefix="/api/v1", tags=["gc"])


@router.get("/gc/plan")
def gc_plan(db: DbDep, who: PrincipalDep, settings: SettingsDep,
            namespace: str | None = Query(None, max_length=64)) -> list[dict[str, Any]]:
    """One row per version: kept or deleted, by which rule, and the bytes it would free."""
    with db.session() as s:
        rows = make_plan(s, settings, namespace=namespace)
    return [r.as_dict() for r in rows if who.can(r.namespace, Role.viewer)]


@router.post("/gc")
def gc_apply(db: DbDep, who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Apply the plan everywhere (needs admin on every namespace: role on '*')."""
    who.require("*", Role.admin)
    return apply_plan(db, settings)


@router.get("/usage")
def usage(db: DbDep, who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Bytes per namespace and environment (a file shared by prefixes counts once)."""
    with db.session() as s:
        report = usage_report(s, Layout(settings.root))
        quotas = dict(s.execute(select(Namespace.name, Namespace.quota_bytes)).all())
    return {ns: {**row, "quota_bytes": quotas.get(ns)} for ns, row in report.items()
            if who.can(ns, Role.viewer)}
