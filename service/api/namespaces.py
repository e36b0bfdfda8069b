"""Namespaces: list them, read one (its environments) and its members, delete one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from envyard.service.api.deps import DbDep, PrincipalDep, SessionDep, SettingsDep
from envyard.service.api.params import Name
from envyard.service.api.schemas import Deleted, Members, NamespaceOut, NamespaceRow
from envyard.service.catalog import check_name, environment_rows
from envyard.service.deletion import delete_environments
from envyard.service.errors import NotFound
from envyard.service.members import members
from envyard.service.models import Namespace, Role

router = APIRouter(prefix="/api/v1/namespaces", tags=["namespaces"])


@router.get("", response_model=list[NamespaceRow])
def list_namespaces(session: SessionDep, who: PrincipalDep) -> list[dict[str, Any]]:
    """The namespaces the caller may read."""
    names = session.scalars(select(Namespace.name).order_by(Namespace.name))
    return [{"name": n} for n in names if who.can(n, Role.viewer)]


@router.get("/{namespace}", response_model=NamespaceOut)
def read_namespace(namespace: Name, session: SessionDep, who: PrincipalDep) -> dict[str, Any]:
    """One namespace and its environments."""
    check_name("namespace", namespace)
    who.require(namespace, Role.viewer)
    if session.scalar(select(Namespace.id).where(Namespace.name == namespace)) is None:
        raise NotFound(f"no namespace {namespace}")
    return {"name": namespace, "environments": environment_rows(session, namespace)}


@router.get("/{namespace}/members", response_model=Members)
def read_members(namespace: Name, session: SessionDep, who: PrincipalDep,
                 settings: SettingsDep) -> dict[str, Any]:
    """Who holds a role on the namespace, and through what: tokens, hub grants, hub
    admins. Its readers see it (not anonymous ones); tokens that hold a role on every
    namespace (operators) are listed to its admins only."""
    check_name("namespace", namespace)
    who.require(namespace, Role.viewer, anonymous=False)
    if session.scalar(select(Namespace.id).where(Namespace.name == namespace)) is None:
        raise NotFound(f"no namespace {namespace}")
    listed = members(session, settings, namespace,
                     service_wide=who.can(namespace, Role.admin, anonymous=False))
    return {"namespace": namespace, "members": [m.as_dict() for m in listed]}


@router.delete("/{namespace}", response_model=Deleted)
def delete_namespace(namespace: Name, db: DbDep, who: PrincipalDep, settings: SettingsDep,
                     force: bool = Query(False, description="also when versions are held")
                     ) -> dict[str, Any]:
    """Delete every environment of the namespace (admins of it), as one delete each."""
    who.require(namespace, Role.admin)
    return delete_environments(db, settings, who, namespace, force=force)
