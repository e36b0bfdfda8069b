"""Environments: read one, submit a spec or push a lock as its next version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from builder.kernels import kernel_dir
from builder.layout import Layout
from service.admission import check_space, heavy
from service.api.deps import (
    DbDep,
    PrincipalDep,
    RunnerDep,
    SessionDep,
    SettingsDep,
    read_body,
    shown_path,
    shown_version,
)
from service.api.params import Name
from service.auth import Principal
from service.buildlog import BuildLog
from service.catalog import (
    check_name,
    earlier_submission,
    find_environment,
    new_version,
    version_summary,
)
from service.db import Database
from service.errors import Invalid
from service.inputs import InputRules, UploadChecker, utf8
from service.models import Role
from service.quota import check_quota
from service.runners import Runner
from service.settings import Settings

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])

_BODY = {"requestBody": {"required": True, "content": {
    "text/yaml": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}}}}}

IdempotencyKey = Annotated[str | None, Header(
    max_length=128, description="Any unique string; a retry with the same key (after a "
    "timeout) gets the version the first attempt made instead of a second one.")]


def _accept(db: Database, settings: Settings, runner: Runner, checker: UploadChecker,
            who: Principal, client: str, where: tuple[str, str], kind: str,
            body: bytes | bytearray, key: str | None) -> JSONResponse:
    """Check the input, number a new version (after the quota check), queue its build,
    answer 202. Runs in a worker thread: parsing a large lock takes a while."""
    namespace, name = where
    text = utf8(body)
    texts = {"spec_text" if kind == "spec" else "lock_text": text}
    if key is not None:  # a retry: the first attempt's version, whatever has filled since
        with db.session() as s:
            earlier = earlier_submission(s, namespace, name, key, kind=kind, **texts)
            if earlier is not None:
                return _accepted(namespace, name, earlier.number, earlier.state)
    check_space(settings)
    source = f"{namespace}/{name}.yml" if kind == "spec" else "the pushed lock"
    checker.check(kind, body, InputRules.of(settings), source=source)
    with db.session() as s:
        check_quota(s, settings, namespace, name)
    with db.session(write=True) as s:
        version, created = new_version(s, namespace, name, kind=kind, idempotency_key=key,
                                       **texts)
        version_id, number, state = version.id, version.number, version.state
    if created:
        BuildLog(Layout(settings.root).build_dir(namespace, name, number) / "build.log").line(
            f"{'submitted' if kind == 'spec' else 'pushed'} by {who.name} from {client}")
    runner.submit(version_id)
    return _accepted(namespace, name, number, state)


def _accepted(namespace: str, name: str, number: int, state: str) -> JSONResponse:
    url = f"/api/v1/environments/{namespace}/{name}/versions/{number}"
    return JSONResponse({"namespace": namespace, "name": name, "version": number,
                         "state": state, "url": url}, status_code=202,
                        headers={"Location": url})


async def _submit(request: Request, settings: Settings, runner: Runner, who: Principal,
                  where: tuple[str, str], kind: str, key: str | None) -> JSONResponse:
    check_name("namespace", where[0]), check_name("environment", where[1])
    who.require(where[0], Role.developer)
    if key is not None and not key.isprintable():
        raise Invalid("Idempotency-Key must be printable text")
    limit = settings.max_spec_bytes if kind == "spec" else settings.max_lock_bytes
    body = await read_body(request, limit)
    client = request.client.host if request.client else "unknown"
    return await heavy(_accept, request.app.state.db, settings, runner,
                       request.app.state.checker, who, client, where, kind, body, key)


@router.get("/{namespace}/{name}")
def read_environment(namespace: Name, name: Name, session: SessionDep,
                     who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """An environment, its current version and every version's state."""
    check_name("namespace", namespace), check_name("environment", name)
    who.require(namespace, Role.viewer)
    env = find_environment(session, namespace, name)
    kernel = kernel_dir(Layout(settings.root).jupyter, namespace, name) / "kernel.json"
    return {"namespace": namespace, "name": name, "current_version": env.current_version,
            "kernel": shown_path(kernel, settings, who, namespace) if kernel.exists() else None,
            "versions": [shown_version(version_summary(v, namespace, name), settings, who,
                                       namespace) for v in env.versions]}


@router.post("/{namespace}/{name}/versions", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued"}})
async def submit_spec(namespace: Name, name: Name, request: Request, db: DbDep,
                      who: PrincipalDep, settings: SettingsDep, runner: RunnerDep,
                      idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Submit an environment.yml (the body) as the next version; it is solved and built."""
    return await _submit(request, settings, runner, who, (namespace, name), "spec",
                         idempotency_key)


@router.post("/{namespace}/{name}/locks", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued"}})
async def push_lock(namespace: Name, name: Name, request: Request, db: DbDep,
                    who: PrincipalDep, settings: SettingsDep, runner: RunnerDep,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Push a conda-lock.yml (the body): the next version is built from exactly it."""
    return await _submit(request, settings, runner, who, (namespace, name), "lock",
                         idempotency_key)
