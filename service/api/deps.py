"""What routers receive: a database session, the caller, the runner, bounded request bodies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from service import csrf
from service.auth import PREFIX, Principal, authenticate
from service.db import Database
from service.errors import TooLarge
from service.models import Role
from service.runners import Runner
from service.settings import Settings
from service.storage import ArtifactStore


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.session() as session:
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_runner(request: Request) -> Runner:
    return request.app.state.runner


TOKEN_COOKIE = "envyard-hub-token"


def _hub_secret(authorization: str | None, cookie: str | None) -> str | None:
    """A token envyard did not issue (no ``ey_`` prefix), from the header or the login cookie."""
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() in ("bearer", "token") and secret and not secret.startswith(PREFIX):
            return secret
        return None
    return cookie or None


def get_principal(request: Request,
                  authorization: Annotated[str | None, Header()] = None) -> Principal:
    """Who is asking. A write authenticated by the login cookie (not by a header) must
    pass the CSRF check (``service.csrf``)."""
    state = request.app.state
    anonymous_read = state.settings.anonymous == "read"
    if state.hub is not None:
        secret = _hub_secret(authorization, request.cookies.get(TOKEN_COOKIE))
        if secret:
            principal = state.hub.principal(secret, anonymous_read=anonymous_read)
            if authorization:
                return principal
            csrf.check(request, state.csrf_key, secret)
            return replace(principal, csrf_token=csrf.token_for(state.csrf_key, secret))
    with state.db.session() as session:
        return authenticate(session, authorization, anonymous_read=anonymous_read)


def shown_path(path: Path | str, settings: Settings, who: Principal, namespace: str) -> str:
    """A path on the volume as a caller may see it: whole for an admin of the namespace,
    else relative to the volume (where the volume is mounted is the operator's business)."""
    role = who.role_on(namespace)
    if role is not None and role.allows(Role.admin):
        return str(path)
    try:
        return str(Path(path).relative_to(settings.root))
    except ValueError:
        return str(path)  # not on the volume (a bucket URL)


async def read_body(request: Request, limit: int) -> str:
    """The request body as UTF-8 text, refused past ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        from builder.errors import SpecError

        raise SpecError(f"the body is not UTF-8 text (byte {exc.start})") from None


def get_db(request: Request) -> Database:
    return request.app.state.db


SessionDep = Annotated[Session, Depends(get_session)]
DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
