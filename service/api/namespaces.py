"""Namespaces: list them, read one (its environments), read and share its members,
delete one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from envyard.service import audit
from envyard.service.api.deps import DbDep, PrincipalDep, SessionDep, SettingsDep
from envyard.service.api.params import Name
from envyard.service.api.schemas import (
    HUB_NAME,
    Deleted,
    Members,
    NamespaceOut,
    NamespaceRow,
    ShareIn,
)
from envyard.service.catalog import check_name, environment_rows, find_namespace
from envyard.service.db import Database
from envyard.service.deletion import delete_environments
from envyard.service.errors import Conflict, Invalid, NotFound
from envyard.service.members import Kind, members, require_hub, share, unshare
from envyard.service.models import Namespace, Role
from envyard.service.settings import Settings

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


class ChannelsIn(BaseModel):
    """A namespace's own channel patterns: they narrow the service's allow-list."""

    model_config = ConfigDict(extra="forbid")
    allowed: list[Annotated[str, Field(min_length=1, max_length=512)]] | None = Field(
        ..., max_length=64, description="fnmatch patterns on canonical channels; a spec "
        "or pushed lock of the namespace must match one of them and the service's "
        "allowed_channels. null: the service's list as it is.")


class ChannelsOut(BaseModel):
    namespace: str
    service: list[str] = Field(description="The service's allowed_channels (unset: its "
                               "default_channels).")
    narrowed: list[str] | None = Field(description="The namespace's own patterns, or null.")
    default_channels: list[str] = Field(description="What a spec naming none solves on.")


def _channels(settings: Settings, namespace: str, narrowed: list[str] | None
              ) -> dict[str, Any]:
    policy = settings.channel_policy(narrowed)
    return {"namespace": namespace, "service": list(policy.allowed or ()),
            "narrowed": narrowed, "default_channels": settings.default_channels}


@router.get("/{namespace}/channels", response_model=ChannelsOut)
def read_channels(namespace: Name, session: SessionDep, who: PrincipalDep,
                  settings: SettingsDep) -> dict[str, Any]:
    """The channels the namespace's specs and locks may name."""
    who.require(namespace, Role.viewer)
    ns = find_namespace(session, namespace)
    return _channels(settings, namespace, ns.allowed_channels)


@router.put("/{namespace}/channels", response_model=ChannelsOut)
def set_channels(namespace: Name, body: ChannelsIn, db: DbDep, who: PrincipalDep,
                 settings: SettingsDep) -> dict[str, Any]:
    """Narrow (or with null, stop narrowing) the channels the namespace may use. Only
    narrows: a channel must still match the service's allowed_channels."""
    who.require(namespace, Role.admin)
    with db.session(write=True) as s:
        ns = find_namespace(s, namespace)
        ns.allowed_channels = body.allowed
        audit.record(s, who, audit.Action.channels, namespace, allowed=body.allowed)
    return _channels(settings, namespace, body.allowed)


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


@router.put("/{namespace}/members", response_model=Members)
def share_namespace(namespace: Name, body: ShareIn, request: Request, db: DbDep,
                    who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Give a hub user or a hub group a role on the namespace (its admins); it adds to
    what the hub grants give and applies at their next request, to the API and to the
    kernels their next server lists."""
    check_name("namespace", namespace)
    who.require(namespace, Role.admin, anonymous=False)
    require_hub(settings)
    kind: Kind = "user" if body.user is not None else "group"
    for attempt in (1, 2):  # two admins sharing with the same subject at once: one updates
        try:
            with db.session(write=True) as s:
                find_namespace(s, namespace)
                trimmed = share(s, settings, who, namespace, kind,
                                body.user or body.group or "", Role(body.role))
            break
        except IntegrityError:
            if attempt == 2:
                raise Conflict("the share changed meanwhile; try again") from None
    request.app.state.hub.forget()
    request.app.state.tokens.forget(trimmed)
    return _members_now(db, settings, namespace)


@router.delete("/{namespace}/members", response_model=Members)
def unshare_namespace(namespace: Name, request: Request, db: DbDep, who: PrincipalDep,
                      settings: SettingsDep,
                      user: str | None = Query(None, pattern=HUB_NAME),
                      group: str | None = Query(None, pattern=HUB_NAME)) -> dict[str, Any]:
    """Take a share away (``?user=`` or ``?group=``); roles from hub grants stay."""
    check_name("namespace", namespace)
    who.require(namespace, Role.admin, anonymous=False)
    require_hub(settings)
    if (user is None) == (group is None):
        raise Invalid("name exactly one of ?user= and ?group=")
    with db.session(write=True) as s:
        find_namespace(s, namespace)
        trimmed = unshare(s, settings, who, namespace,
                          "user" if user is not None else "group", user or group or "")
    request.app.state.hub.forget()
    request.app.state.tokens.forget(trimmed)
    return _members_now(db, settings, namespace)


def _members_now(db: Database, settings: Settings, namespace: str) -> dict[str, Any]:
    """The members after a change, as its admin (who made it) sees them."""
    with db.session() as s:
        return {"namespace": namespace, "members": [
            m.as_dict() for m in members(s, settings, namespace, service_wide=True)]}


@router.delete("/{namespace}", response_model=Deleted)
def delete_namespace(namespace: Name, db: DbDep, who: PrincipalDep, settings: SettingsDep,
                     force: bool = Query(False, description="also when versions are held")
                     ) -> dict[str, Any]:
    """Delete every environment of the namespace (admins of it), as one delete each."""
    who.require(namespace, Role.admin)
    return delete_environments(db, settings, who, namespace, force=force)
