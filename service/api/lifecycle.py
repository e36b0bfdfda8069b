"""Rollback, holds, retention overrides, quotas, a namespace's system requirements, and the
policies in force."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from envyard.builder.virtual import SystemRequirements
from envyard.service import audit, policy
from envyard.service.api.deps import DbDep, PrincipalDep, SettingsDep
from envyard.service.api.params import Name, VersionNumber
from envyard.service.api.schemas import CurrentOut, HoldOut, QuotaSet, RetentionSet
from envyard.service.catalog import find_environment, find_namespace, find_version
from envyard.service.current import make_current
from envyard.service.errors import Conflict, Invalid
from envyard.service.models import RetentionRule, Role
from envyard.service.settings import JobProfile
from envyard.service.transitions import State

router = APIRouter(prefix="/api/v1", tags=["lifecycle"])
T = TypeVar("T")


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_last: int | None = Field(None, ge=0, le=10_000)
    keep_days: float | None = Field(None, ge=0, le=36_500)
    failed_log_days: float | None = Field(None, ge=0, le=36_500)


class QuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes: int | None = Field(None, ge=0, le=2**62, description="None removes the quota.")


@router.post("/environments/{namespace}/{name}/rollback", response_model=CurrentOut)
def rollback(namespace: Name, name: Name, body: Rollback, db: DbDep, who: PrincipalDep,
             settings: SettingsDep) -> dict[str, Any]:
    """Point ``current`` at an earlier (or any) ready version."""
    who.require(namespace, Role.developer)
    return make_current(db, settings, who, namespace, name, body.version)


def _hold(db: Any, who: Any, namespace: str, name: str, number: int, held: bool
          ) -> dict[str, Any]:
    who.require(namespace, Role.developer)
    with db.session(write=True) as s:
        v = find_version(s, namespace, name, number)
        if v.state in (State.deleting, State.deleted):
            raise Conflict(f"version {number} is {v.state}; it cannot be held")
        v.held = held
        audit.record(s, who, audit.Action.hold if held else audit.Action.unhold,
                     namespace, name, number)
    return {"namespace": namespace, "name": name, "number": number, "held": held}


@router.post("/environments/{namespace}/{name}/versions/{number}/hold", response_model=HoldOut)
def hold(namespace: Name, name: Name, number: VersionNumber, db: DbDep,
         who: PrincipalDep) -> dict[str, Any]:
    """Keep this version whatever the retention rules say."""
    return _hold(db, who, namespace, name, number, True)


@router.delete("/environments/{namespace}/{name}/versions/{number}/hold", response_model=HoldOut)
def unhold(namespace: Name, name: Name, number: VersionNumber, db: DbDep,
           who: PrincipalDep) -> dict[str, Any]:
    """Let the retention rules decide again."""
    return _hold(db, who, namespace, name, number, False)


def _set_rule(db: Any, who: Any, namespace: str, environment: str, body: RetentionIn
              ) -> dict[str, Any]:
    with db.session(write=True) as s:
        rule = s.scalar(select(RetentionRule).where(RetentionRule.namespace == namespace,
                                                    RetentionRule.environment == environment))
        if rule is None:
            rule = RetentionRule(namespace=namespace, environment=environment)
            s.add(rule)
        rule.keep_last, rule.keep_days = body.keep_last, body.keep_days
        rule.failed_log_days = body.failed_log_days
        audit.record(s, who, audit.Action.retention, namespace, environment or None,
                     **body.model_dump())
    return {"namespace": namespace, "environment": environment or None,
            **body.model_dump()}


@router.put("/retention/{namespace}", response_model=RetentionSet)
def set_namespace_retention(namespace: Name, body: RetentionIn, db: DbDep,
                            who: PrincipalDep) -> dict[str, Any]:
    """Override the global retention for a namespace (unset fields inherit)."""
    who.require(namespace, Role.admin)
    return _set_rule(db, who, namespace, "", body)


@router.put("/retention/{namespace}/{name}", response_model=RetentionSet)
def set_environment_retention(namespace: Name, name: Name, body: RetentionIn, db: DbDep,
                              who: PrincipalDep) -> dict[str, Any]:
    """Override the retention for one environment (unset fields inherit)."""
    who.require(namespace, Role.admin)
    return _set_rule(db, who, namespace, name, body)


@router.put("/namespaces/{namespace}/quota", response_model=QuotaSet)
def set_quota(namespace: Name, body: QuotaIn, db: DbDep, who: PrincipalDep) -> dict[str, Any]:
    """Set (or with null remove) the namespace's storage quota in bytes."""
    who.require(namespace, Role.admin)
    with db.session(write=True) as s:
        ns = find_namespace(s, namespace)
        ns.quota_bytes = body.bytes
        audit.record(s, who, audit.Action.quota, namespace, bytes=body.bytes)
    return {"namespace": namespace, "quota_bytes": body.bytes}


_SYSTEM = ("{what} version its environments assume ({package}) unless their spec says; "
           "'' for none; null: the service's default")


class SystemIn(BaseModel):
    """The system a namespace's environments target (a GPU team: cuda)."""

    model_config = ConfigDict(extra="forbid")
    cuda: str | None = Field(None, max_length=32, description=_SYSTEM.format(
        what="CUDA", package="__cuda"))
    glibc: str | None = Field(None, max_length=32, description=_SYSTEM.format(
        what="glibc", package="__glibc"))
    macos: str | None = Field(None, max_length=32, description=_SYSTEM.format(
        what="macOS", package="__osx"))


class SystemSet(BaseModel):
    namespace: str
    system_requirements: dict[str, str] = Field(
        description="What is set (a key not here: the service's default).")


@router.put("/namespaces/{namespace}/system-requirements", response_model=SystemSet)
def set_system_requirements(namespace: Name, body: SystemIn, db: DbDep, who: PrincipalDep,
                            settings: SettingsDep) -> dict[str, Any]:
    """Set what the namespace's environments assume of their system where their spec says
    nothing (its admins); a version beyond the service's limits is refused (422)."""
    who.require(namespace, Role.admin)
    try:
        system = SystemRequirements.of(body.model_dump())
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    system.check(settings.virtual_packages_allowed, settings.build_platform())
    said = system.said()
    with db.session(write=True) as s:
        ns = find_namespace(s, namespace)
        ns.system_requirements = said or None
        audit.record(s, who, audit.Action.system_requirements, namespace,
                     system_requirements=said)
    return {"namespace": namespace, "system_requirements": said}


class Value(BaseModel, Generic[T]):
    """A policy's value in force and the layer that set it."""

    value: T
    source: Literal["service", "namespace", "environment"] = Field(
        description="service: the service's setting; namespace or environment: an override")


class RetentionOut(BaseModel):
    keep_last: Value[int | None]
    keep_days: Value[float | None]
    failed_log_days: Value[float | None]


class PolicyOut(BaseModel):
    """Every policy in force, each with where its value came from."""

    namespace: str
    name: str | None = None
    retention: RetentionOut
    dask_follow: Value[bool]
    dask_policy: Value[Literal["warn", "block"]]
    images: Value[bool]
    job_profile: Value[JobProfile]
    quota_bytes: Value[int | None]
    system_requirements: dict[str, Value[str | None]] = Field(description=(
        "cuda, glibc, macos: the version a build assumes ('' none; null conda-lock's "
        "default); environment: the spec says it"))


@router.get("/namespaces/{namespace}/policy", response_model=PolicyOut)
def namespace_policy(namespace: Name, db: DbDep, who: PrincipalDep,
                     settings: SettingsDep) -> dict[str, Any]:
    """The policies an environment of this namespace gets unless it overrides them."""
    who.require(namespace, Role.viewer)
    with db.session() as s:
        return policy.for_namespace(s, settings, find_namespace(s, namespace))


@router.get("/environments/{namespace}/{name}/policy", response_model=PolicyOut)
def environment_policy(namespace: Name, name: Name, db: DbDep, who: PrincipalDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """The policies this environment's builds and GC follow, and where each comes from."""
    who.require(namespace, Role.viewer)
    with db.session() as s:
        env = find_environment(s, namespace, name)
        return policy.for_environment(s, settings, env, env.namespace)
