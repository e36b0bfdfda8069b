"""Environments: read one, submit a spec or push a lock as its next version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from builder.errors import LockError
from builder.install import check_installable
from builder.kernels import kernel_dir
from builder.layout import Layout
from builder.lock import parse_lock
from builder.spec import parse_spec
from service.api.deps import DbDep, PrincipalDep, RunnerDep, SessionDep, SettingsDep, read_body
from service.api.params import Name
from service.catalog import check_name, find_environment, new_version, version_summary
from service.db import Database
from service.jobs import LocalRunner
from service.models import Role
from service.quota import check_quota
from service.settings import Settings

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])

_BODY = {"requestBody": {"required": True, "content": {
    "text/yaml": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}}}}}


def _queue(db: Database, settings: Settings, runner: LocalRunner, namespace: str, name: str,
           kind: str, text: str) -> JSONResponse:
    """Number a new version (after the quota check), queue its build, answer 202."""
    with db.session() as s:
        check_quota(s, settings, namespace, name)
    with db.session(write=True) as s:
        version = new_version(s, namespace, name, kind=kind,
                              **{"spec_text" if kind == "spec" else "lock_text": text})
    runner.submit(version.id)
    number = version.number
    url = f"/api/v1/environments/{namespace}/{name}/versions/{number}"
    return JSONResponse({"namespace": namespace, "name": name, "version": number,
                         "state": "queued", "url": url}, status_code=202,
                        headers={"Location": url})


@router.get("/{namespace}/{name}")
def read_environment(namespace: Name, name: Name, session: SessionDep,
                     who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """An environment, its current version and every version's state."""
    check_name("namespace", namespace), check_name("environment", name)
    who.require(namespace, Role.viewer)
    env = find_environment(session, namespace, name)
    kernel = kernel_dir(Layout(settings.root).jupyter, namespace, name) / "kernel.json"
    return {"namespace": namespace, "name": name, "current_version": env.current_version,
            "kernel": str(kernel) if kernel.exists() else None,
            "versions": [version_summary(v, namespace, name) for v in env.versions]}


@router.post("/{namespace}/{name}/versions", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued"}})
async def submit_spec(namespace: Name, name: Name, request: Request, db: DbDep,
                      who: PrincipalDep, settings: SettingsDep, runner: RunnerDep
                      ) -> JSONResponse:
    """Submit an environment.yml (the body) as the next version; it is solved and built."""
    check_name("namespace", namespace), check_name("environment", name)
    who.require(namespace, Role.developer)
    text = await read_body(request, settings.max_spec_bytes)
    parse_spec(text, source=f"{namespace}/{name}.yml", policy=settings.channel_policy(),
               max_bytes=settings.max_spec_bytes)
    return _queue(db, settings, runner, namespace, name, "spec", text)


def check_pushed_lock(text: str, settings: Settings) -> None:
    """A pushed lock must give a verified environment for the service's platform from the
    service's own channels or package index (``check_installable``), and name only
    channels the allow-list admits."""
    lock = parse_lock(text, source="the pushed lock", max_bytes=settings.max_lock_bytes)
    policy = settings.channel_policy()
    for channel in lock.metadata.channels:
        if not policy.check(channel.url):
            raise LockError(f"the lock names channel '{channel.url}', which is not allowed "
                            "here")
    check_installable(lock, settings.build_platform(), settings.package_sources())


@router.post("/{namespace}/{name}/locks", status_code=202, openapi_extra=_BODY,
             responses={202: {"description": "queued"}})
async def push_lock(namespace: Name, name: Name, request: Request, db: DbDep,
                    who: PrincipalDep, settings: SettingsDep, runner: RunnerDep
                    ) -> JSONResponse:
    """Push a conda-lock.yml (the body): the next version is built from exactly it."""
    check_name("namespace", namespace), check_name("environment", name)
    who.require(namespace, Role.developer)
    text = await read_body(request, settings.max_lock_bytes)
    check_pushed_lock(text, settings)
    return _queue(db, settings, runner, namespace, name, "lock", text)
