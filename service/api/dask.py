"""The Dask cluster's pins, namespace/environment policies, and the upgrade what-if."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from envyard.builder.dask import OPTIONAL, REQUIRED, PinSet
from envyard.service import audit, policy
from envyard.service.api.deps import (
    DbDep,
    PrincipalDep,
    RunnerDep,
    SessionDep,
    SettingsDep,
    shown_path,
)
from envyard.service.api.params import Name
from envyard.service.api.schemas import (
    HUB_NAME,
    ClusterEnvironments,
    EnvironmentDask,
    NamespaceDask,
    Pins,
    Upgrade,
)
from envyard.service.catalog import find_environment, find_namespace
from envyard.service.dask import cluster_environments, current_pins, hub_user_roles, set_pins
from envyard.service.errors import BadPins, Forbidden, Invalid, NotFound
from envyard.service.models import Role
from envyard.service.upgrade import apply_upgrade, what_if

router = APIRouter(prefix="/api/v1", tags=["dask"])


class PinsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    versions: dict[str, str] = Field(description="package -> version, distributed's names")
    source: str = ""


class UpgradeIn(PinsIn):
    apply: bool = False


class NamespaceDaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["warn", "block"] | None = None
    follow: bool | None = None


class EnvironmentDaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    follow: bool | None = Field(None, description="None: follow the namespace's setting")


def _pins(body: PinsIn) -> PinSet:
    unknown = set(body.versions) - set(REQUIRED + OPTIONAL)
    if unknown or not body.versions:
        raise BadPins(f"pins must name packages distributed compares "
                      f"({', '.join(REQUIRED + OPTIONAL)}); not: {', '.join(sorted(unknown))}")
    return PinSet(dict(body.versions), body.source or "API")


@router.get("/dask/pins", response_model=Pins)
def get_pins(db: DbDep, who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """The pin set in force (the versions the scheduler and workers run)."""
    with db.session() as s:
        pins = current_pins(s, settings)
    if pins is None:
        raise NotFound("no Dask cluster pins are set (setting dask_pins, or PUT this URL)")
    return {"versions": pins.versions, "source": pins.source}


@router.put("/dask/pins", response_model=Pins)
def put_pins(body: PinsIn, db: DbDep, who: PrincipalDep) -> dict[str, Any]:
    """Replace the pin set (admin on every namespace)."""
    who.require("*", Role.admin)
    pins = _pins(body)
    with db.session(write=True) as s:
        set_pins(s, pins)
        audit.record(s, who, audit.Action.dask_pins, versions=pins.versions,
                     source=pins.source)
    return {"versions": pins.versions, "source": pins.source}


@router.put("/namespaces/{namespace}/dask", response_model=NamespaceDask)
def namespace_dask(namespace: Name, body: NamespaceDaskIn, db: DbDep,
                   who: PrincipalDep) -> dict[str, Any]:
    """Block or warn on required mismatches; whether environments follow the pins."""
    who.require(namespace, Role.admin)
    with db.session(write=True) as s:
        ns = find_namespace(s, namespace)
        if body.policy is not None:
            ns.dask_policy = body.policy
        if body.follow is not None:
            ns.dask_follow = body.follow
        audit.record(s, who, audit.Action.dask_policy, namespace,
                     **body.model_dump(exclude_none=True))
        return {"namespace": namespace, "policy": policy.dask_policy(ns).value,
                "follow": policy.dask_follow(None, ns).value}


@router.put("/environments/{namespace}/{name}/dask", response_model=EnvironmentDask)
def environment_dask(namespace: Name, name: Name, body: EnvironmentDaskIn, db: DbDep,
                     who: PrincipalDep) -> dict[str, Any]:
    """Whether this environment is locked within the cluster's pins."""
    who.require(namespace, Role.developer)
    with db.session(write=True) as s:
        env = find_environment(s, namespace, name)
        env.dask_follow = body.follow
        audit.record(s, who, audit.Action.dask_policy, namespace, name, follow=body.follow)
    return {"namespace": namespace, "name": name, "follow": body.follow}


@router.post("/dask/upgrade", response_model=Upgrade, response_model_exclude_unset=True)
def upgrade(body: UpgradeIn, db: DbDep, who: PrincipalDep, settings: SettingsDep,
            runner: RunnerDep) -> dict[str, Any]:
    """What-if: re-lock every environment with distributed against ``versions``; with
    ``apply``, build them and move the pins once all are ready."""
    pins = _pins(body)
    if body.apply:
        who.require("*", Role.admin)
        return apply_upgrade(db, settings, who, pins, runner.submit)
    if not who.roles:  # re-solving is work: anonymous readers and role-less tokens may not
        raise Forbidden(f"{who.name} has no role on any namespace; the what-if re-solves "
                        "the environments of the namespaces it may read")
    return {"rows": what_if(db, settings, pins, who.readable())}


#: The most hub groups one asking may name (a hub user's groups, as a gateway knows them).
MAX_GROUPS = 256
HUB_NAME_RE = re.compile(HUB_NAME)


AskedUser = Annotated[str | None, Query(pattern=HUB_NAME, max_length=255, description=(
    "A hub user to answer for (a gateway asking for its user); only a caller with admin "
    "on every namespace ('*') may name one."))]
AskedGroups = Annotated[list[str] | None, Query(description=(
    "That user's hub groups (repeat the parameter)."))]


@router.get("/dask/environments", response_model=ClusterEnvironments)
def environments_for_clusters(session: SessionDep, who: PrincipalDep, settings: SettingsDep,
                              user: AskedUser = None, group: AskedGroups = None,
                              admin: bool = False) -> dict[str, Any]:
    """The environments a Dask cluster may run for the caller (or for hub ``user``, by the
    same grants and shares as that user's own requests): the readable ones whose current
    version has distributed, with prefix, image and pin verdict; ``offered`` ones a
    gateway lists, the others with the ``problem`` it refuses them with."""
    group = group or []
    if len(group) > MAX_GROUPS or not all(HUB_NAME_RE.fullmatch(g) for g in group):
        raise Invalid(f"group: at most {MAX_GROUPS} hub group names, each matching "
                      f"{HUB_NAME}")
    if user is None:
        if group or admin:
            raise Invalid("'group' and 'admin' describe a 'user'; name the user too")
        readable, whose = who.readable(), who.name
    else:
        who.require("*", Role.admin, anonymous=False)
        roles = hub_user_roles(session, settings, user, sorted(set(group)), admin)
        readable = None if "*" in roles else set(roles)
        whose = f"hub user '{user}'"
    rows = cluster_environments(session, settings, readable)
    return {"user": whose, "environments": [
        {**row.as_dict(), "prefix": shown_path(row.prefix, settings, who, row.namespace)}
        for row in rows]}
