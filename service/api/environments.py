"""Environments: find them, read one; preview a spec; submit a spec, a preview or a pushed
lock as its next version, or an earlier version again (rebuild, reinstall); describe;
delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from envyard.builder.kernels import kernel_dir, read_kernelspec
from envyard.builder.layout import Layout
from envyard.service import audit
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
from envyard.service.api.params import Name, VersionNumber
from envyard.service.api.schemas import (
    Accepted,
    Deleted,
    DeletionPlan,
    DescriptionSet,
    EnvironmentOut,
    FoundPage,
    PreviewOut,
)
from envyard.service.auth import Principal
from envyard.service.catalog import check_name, find_environment, version_summary
from envyard.service.deletion import delete_environments, deletion_plan
from envyard.service.errors import Invalid
from envyard.service.find import DaskVerdict, Filters, StateFilter, find_environments
from envyard.service.models import Role
from envyard.service.previews import find_preview, make_preview
from envyard.service.runners import Runner
from envyard.service.settings import Settings
from envyard.service.submissions import accept, accept_again, accept_preview

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])

_BODY = {"requestBody": {"required": True, "content": {
    "text/yaml": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}}}}}

IdempotencyKey = Annotated[str | None, Header(
    max_length=128, description="Any unique string; a retry with the same key (after a "
    "timeout) gets the version the first attempt made instead of a second one.")]


#: How a spec is solved when the environment has a current version.
Update = Annotated[Literal["minimal", "full"], Query(description=(
    "minimal: keep the current version's packages wherever the spec allows, so only what "
    "changed (and what it needs) moves; full: solve afresh (newest everything)."))]

#: Why this version: a line for the history, shown beside who submitted it.
Message = Annotated[str | None, Query(max_length=500, description="Why this change: "
                                      "shown in the environment's history.")]


def _writer(who: Principal, where: tuple[str, str], key: str | None = None,
            message: str | None = None) -> None:
    """A write to an environment: its names, the developer role, printable words."""
    check_name("namespace", where[0]), check_name("environment", where[1])
    who.require(where[0], Role.developer)
    if key is not None and not key.isprintable():
        raise Invalid("Idempotency-Key must be printable text")
    if message is not None and not message.isprintable():
        raise Invalid("message must be printable text on one line")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _submit(request: Request, settings: Settings, runner: Runner, who: Principal,
                  where: tuple[str, str], kind: str, key: str | None,
                  message: str | None = None, update: str = "minimal",
                  preview: str | None = None) -> JSONResponse:
    _writer(who, where, key, message)
    limit = settings.max_spec_bytes if kind == "spec" else settings.max_lock_bytes
    body = await read_body(request, limit)
    db = request.app.state.db
    if preview is not None:
        if body.strip():
            raise Invalid("send either an environment.yml or preview=<id>, not both: a "
                          "preview builds the lock it showed")
        return await heavy(accept_preview, db, settings, runner, who, _client(request),
                           where, preview, key, message)
    return await heavy(accept, db, settings, runner, request.app.state.checker, who,
                       _client(request), where, kind, body, key, message, update)


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
    jupyter = Layout(settings.root).jupyter
    kernel = kernel_dir(jupyter, namespace, name) / "kernel.json"
    spec = read_kernelspec(jupyter, namespace, name)
    return {"namespace": namespace, "name": name, "description": env.description,
            "current_version": env.current_version,
            "kernel": shown_path(kernel, settings, who, namespace) if spec else None,
            "kernel_name": kernel.parent.name if spec else None,
            "kernel_display_name": spec.get("display_name") if spec else None,
            "versions": [shown_version(version_summary(v, namespace, name), settings, who,
                                       namespace) for v in env.versions]}


@router.post("/{namespace}/{name}/versions", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued", "model": Accepted}})
async def submit_spec(namespace: Name, name: Name, request: Request, db: DbDep,
                      who: PrincipalDep, settings: SettingsDep, runner: RunnerDep,
                      idempotency_key: IdempotencyKey = None,
                      message: Message = None, update: Update = "minimal",
                      preview: str | None = Query(None, max_length=40, description=(
                          "Build this preview's lock exactly as shown (send no body); "
                          "410 once it has expired."))) -> JSONResponse:
    """Submit an environment.yml (the body) as the next version; it is solved (on the
    current version's lock unless ``update=full``) and built. Or, with ``preview``, build
    the lock a preview showed."""
    return await _submit(request, settings, runner, who, (namespace, name), "spec",
                         idempotency_key, message, update, preview)


@router.post("/{namespace}/{name}/preview", openapi_extra=_BODY, response_model=PreviewOut)
async def preview_spec(namespace: Name, name: Name, request: Request, who: PrincipalDep,
                       settings: SettingsDep, update: Update = "minimal") -> dict[str, Any]:
    """Solve an environment.yml (the body) as a submission would and show what it would
    change against the current version, the Dask pin check and the quota estimate; builds
    nothing. Build it with ``POST …/versions?preview=<id>`` before it expires."""
    _writer(who, (namespace, name))
    body = await read_body(request, settings.max_spec_bytes)
    return await heavy(make_preview, request.app.state.db, settings,
                       request.app.state.checker, who, (namespace, name), body, update)


@router.get("/{namespace}/{name}/previews/{preview}/lock", response_class=PlainTextResponse)
def download_preview_lock(namespace: Name, name: Name, preview: str, session: SessionDep,
                          who: PrincipalDep) -> PlainTextResponse:
    """The conda-lock.yml a preview would build, byte for byte."""
    _writer(who, (namespace, name))
    return PlainTextResponse(find_preview(session, (namespace, name), preview[:40]).lock_text,
                             media_type="text/yaml")


async def _again(request: Request, settings: Settings, runner: Runner, who: Principal,
                 where: tuple[str, str], number: int, how: str, update: str,
                 message: str | None) -> JSONResponse:
    _writer(who, where, message=message)
    return await heavy(accept_again, request.app.state.db, settings, runner, who,
                       _client(request), where, number, how, update, message)


@router.post("/{namespace}/{name}/versions/{number}/rebuild", status_code=202,
             responses={202: {"description": "queued", "model": Accepted}})
async def rebuild_version(namespace: Name, name: Name, number: VersionNumber,
                          request: Request, who: PrincipalDep, settings: SettingsDep,
                          runner: RunnerDep, update: Update = "full",
                          message: Message = None) -> JSONResponse:
    """Version ``number``'s spec, solved again (afresh unless ``update=minimal``), as the
    next version: picks up what the channels have released since."""
    return await _again(request, settings, runner, who, (namespace, name), number,
                        "rebuild", update, message)


@router.post("/{namespace}/{name}/versions/{number}/reinstall", status_code=202,
             responses={202: {"description": "queued", "model": Accepted}})
async def reinstall_version(namespace: Name, name: Name, number: VersionNumber,
                            request: Request, who: PrincipalDep, settings: SettingsDep,
                            runner: RunnerDep, message: Message = None) -> JSONResponse:
    """Version ``number``'s lock, installed as it is as the next version (brings back a
    version GC collected)."""
    return await _again(request, settings, runner, who, (namespace, name), number,
                        "reinstall", "full", message)


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
        text = body.description
        audit.record(s, who, audit.Action.describe, namespace, name,
                     description=text if text is None or len(text) <= 200
                     else text[:200] + "…")
    return {"namespace": namespace, "name": name, "description": body.description}


@router.get("/{namespace}/{name}/deletion", response_model=DeletionPlan)
def deletion(namespace: Name, name: Name, db: DbDep, who: PrincipalDep,
             settings: SettingsDep) -> dict[str, Any]:
    """What deleting the environment would collect and free, and which holds and builds
    it would end; nothing is deleted (a confirmation shows it)."""
    who.require(namespace, Role.viewer)
    return deletion_plan(db, settings, namespace, name)


@router.delete("/{namespace}/{name}", response_model=Deleted)
def delete_environment(namespace: Name, name: Name, db: DbDep, who: PrincipalDep,
                       settings: SettingsDep,
                       force: bool = Query(False, description="also when versions are held "
                                           "(their holds are released)")) -> dict[str, Any]:
    """Delete the environment: gone from listings and kernels at once, its builds
    cancelled, every version collected by the next GC; spec, lock and log stay as the
    record. Submitting under the name again brings it back."""
    who.require(namespace, Role.developer)
    return delete_environments(db, settings, who, namespace, name, force=force)
