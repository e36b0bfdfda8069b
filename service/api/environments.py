"""Environments: find them, read one, submit a spec or push a lock as its next version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from envyard.builder.kernels import kernel_dir
from envyard.builder.layout import Layout
from envyard.service.admission import heavy
from envyard.service.api.deps import (
    DbDep,
    PrincipalDep,
    RunnerDep,
    SessionDep,
    SettingsDep,
    read_body,
    shown_path,
    shown_version,
)
from envyard.service.api.params import Name
from envyard.service.api.schemas import (
    Accepted,
    Deleted,
    DescriptionSet,
    EnvironmentOut,
    FoundPage,
)
from envyard.service.auth import Principal
from envyard.service.catalog import check_name, find_environment, version_summary
from envyard.service.deletion import delete_environments
from envyard.service.errors import Invalid
from envyard.service.find import DaskVerdict, Filters, StateFilter, find_environments
from envyard.service.models import Role
from envyard.service.runners import Runner
from envyard.service.settings import Settings
from envyard.service.submissions import accept

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])

_BODY = {"requestBody": {"required": True, "content": {
    "text/yaml": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}}}}}

IdempotencyKey = Annotated[str | None, Header(
    max_length=128, description="Any unique string; a retry with the same key (after a "
    "timeout) gets the version the first attempt made instead of a second one.")]


#: Why this version: a line for the history, shown beside who submitted it.
Message = Annotated[str | None, Query(max_length=500, description="Why this change: "
                                      "shown in the environment's history.")]


async def _submit(request: Request, settings: Settings, runner: Runner, who: Principal,
                  where: tuple[str, str], kind: str, key: str | None,
                  message: str | None = None) -> JSONResponse:
    check_name("namespace", where[0]), check_name("environment", where[1])
    who.require(where[0], Role.developer)
    if key is not None and not key.isprintable():
        raise Invalid("Idempotency-Key must be printable text")
    if message is not None and not message.isprintable():
        raise Invalid("message must be printable text on one line")
    limit = settings.max_spec_bytes if kind == "spec" else settings.max_lock_bytes
    body = await read_body(request, limit)
    client = request.client.host if request.client else "unknown"
    return await heavy(accept, request.app.state.db, settings, runner,
                       request.app.state.checker, who, client, where, kind, body, key,
                       message)


#: ``package=``: repeatable, each a package the current version must have
Packages = Annotated[list[str] | None, Query(
    description="A package the current version has (conda or pip); repeat it for several "
    "(at most 20): each must be there.")]
States = Annotated[StateFilter | None, Query(
    description="The newest version's state; building: queued, solving, installing or "
    "packing.")]
Verdicts = Annotated[DaskVerdict | None, Query(
    description="The current version's Dask pin check.")]


@router.get("", response_model=FoundPage)
def find(session: SessionDep, who: PrincipalDep,
         search: str | None = Query(None, max_length=200, description="Part of "
                                    "NAMESPACE/NAME or of the description (any case)."),
         package: Packages = None, state: States = None, dask: Verdicts = None,
         cursor: str | None = Query(None, max_length=400, description="The next of the "
                                    "page before."),
         limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """Find environments in every namespace you may read (deleted ones are not found),
    a page at a time."""
    if search is not None and not search.isprintable():
        raise Invalid("search must be printable text")
    if package is not None and len(package) > 20:
        raise Invalid(f"{len(package)} packages: at most 20 in one find")
    page = find_environments(session, who, Filters(search or None, package or (), state,
                                                   dask), cursor=cursor, limit=limit)
    return {"environments": page.rows, "next": page.next}


@router.get("/{namespace}/{name}", response_model=EnvironmentOut)
def read_environment(namespace: Name, name: Name, session: SessionDep,
                     who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """An environment, its current version and every version's state."""
    check_name("namespace", namespace), check_name("environment", name)
    who.require(namespace, Role.viewer)
    env = find_environment(session, namespace, name)
    kernel = kernel_dir(Layout(settings.root).jupyter, namespace, name) / "kernel.json"
    return {"namespace": namespace, "name": name, "description": env.description,
            "current_version": env.current_version,
            "kernel": shown_path(kernel, settings, who, namespace) if kernel.exists() else None,
            "versions": [shown_version(version_summary(v, namespace, name), settings, who,
                                       namespace) for v in env.versions]}


@router.post("/{namespace}/{name}/versions", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued", "model": Accepted}})
async def submit_spec(namespace: Name, name: Name, request: Request, db: DbDep,
                      who: PrincipalDep, settings: SettingsDep, runner: RunnerDep,
                      idempotency_key: IdempotencyKey = None,
                      message: Message = None) -> JSONResponse:
    """Submit an environment.yml (the body) as the next version; it is solved and built."""
    return await _submit(request, settings, runner, who, (namespace, name), "spec",
                         idempotency_key, message)


@router.post("/{namespace}/{name}/locks", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued", "model": Accepted}})
async def push_lock(namespace: Name, name: Name, request: Request, db: DbDep,
                    who: PrincipalDep, settings: SettingsDep, runner: RunnerDep,
                    idempotency_key: IdempotencyKey = None,
                    message: Message = None) -> JSONResponse:
    """Push a conda-lock.yml (the body): the next version is built from exactly it."""
    return await _submit(request, settings, runner, who, (namespace, name), "lock",
                         idempotency_key, message)


class DescriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(max_length=2000, description="None removes it.")


@router.put("/{namespace}/{name}/description", response_model=DescriptionSet)
def set_description(namespace: Name, name: Name, body: DescriptionIn, db: DbDep,
                    who: PrincipalDep) -> dict[str, Any]:
    """What the environment is for, shown with it (developers of the namespace)."""
    who.require(namespace, Role.developer)
    if body.description is not None and not all(
            ch.isprintable() or ch == "\n" for ch in body.description):
        raise Invalid("description must be printable text (lines may break)")
    with db.session(write=True) as s:
        env = find_environment(s, namespace, name)
        env.description = body.description
    return {"namespace": namespace, "name": name, "description": body.description}


@router.delete("/{namespace}/{name}", response_model=Deleted)
def delete_environment(namespace: Name, name: Name, db: DbDep, who: PrincipalDep,
                       settings: SettingsDep,
                       force: bool = Query(False, description="also when versions are held "
                                           "(their holds are released)")) -> dict[str, Any]:
    """Delete the environment: gone from listings and kernels at once, its builds
    cancelled, every version collected by the next GC; spec, lock and log stay as the
    record. Submitting under the name again brings it back."""
    who.require(namespace, Role.developer)
    return delete_environments(db, settings, namespace, name, force=force)
