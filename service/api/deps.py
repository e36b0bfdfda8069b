"""What routers receive: a database session, the caller, the runner, bounded request bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Request
from fastapi import Path as FastAPIPath
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from envyard.service import csrf
from envyard.service.auth import PREFIX, SESSION_SCHEME, Principal
from envyard.service.db import Database
from envyard.service.errors import Invalid, NotFound, TooLarge
from envyard.service.models import Role
from envyard.service.runners import Runner
from envyard.service.settings import Settings
from envyard.service.storage import ArtifactStore


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The route's session. Opened on the event loop (no I/O: it connects at its first
    query, in the route's thread); committed and closed in a worker thread."""
    session = request.app.state.db.open_session()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still returns its
            await run_in_threadpool(_end, session, False)  # connection to the pool
        raise
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(_end, session, True)


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_runner(request: Request) -> Runner:
    return request.app.state.runner


#: The browser login through the hub (OAuth): the hub token, HttpOnly.
TOKEN_COOKIE = "envyard-hub-token"
#: The browser login with an envyard token (the web UI's form, outside a hub): a session
#: secret (``auth.start_session``), never the token; HttpOnly.
SESSION_COOKIE = "envyard-session"


def _hub_secret(authorization: str | None, cookie: str | None) -> str | None:
    """A token envyard did not issue (no ``ey_`` prefix), from the header or the login cookie."""
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() in ("bearer", "token") and secret and not secret.startswith(PREFIX):
            return secret
        return None
    return cookie or None


def _credentials(request: Request, authorization: str | None
                 ) -> tuple[str | None, str | None, str | None]:
    """(hub secret, envyard ``Authorization``, cookie secret): what identifies the caller.
    A header wins over cookies; behind a hub only its login cookie counts, elsewhere only
    the web session's. The cookie secret is set when a cookie (not a header)
    authenticates: its writes need the CSRF token."""
    state = request.app.state
    hub_cookie = request.cookies.get(TOKEN_COOKIE) if state.hub is not None else None
    secret = _hub_secret(authorization, hub_cookie) if state.hub is not None else None
    if secret:
        return secret, None, None if authorization else secret
    login = request.cookies.get(SESSION_COOKIE) if state.hub is None else None
    if not authorization and login:  # (behind a hub only the hub's login counts)
        return None, f"{SESSION_SCHEME} {login}", login
    return None, authorization, None


async def get_principal(request: Request,
                        authorization: Annotated[str | None, Header()] = None) -> Principal:
    """Who is asking: from the caches on the event loop when they know, else in a
    worker thread (``resolve_principal``)."""
    state = request.app.state
    anonymous_read = state.settings.anonymous == "read"
    secret, header, cookie = _credentials(request, authorization)
    known = state.hub.peek(secret, anonymous_read=anonymous_read) if secret else \
        state.tokens.peek(header, anonymous_read=anonymous_read)
    if known is None:
        return await run_in_threadpool(resolve_principal, request, authorization)
    return _cookie_checked(request, cookie, known)


def resolve_principal(request: Request, authorization: str | None) -> Principal:
    """Who is asking (blocking: may ask the database or the hub). A write authenticated
    by a login cookie (not by a header) must pass the CSRF check (``service.csrf``)."""
    state = request.app.state
    anonymous_read = state.settings.anonymous == "read"
    secret, header, cookie = _credentials(request, authorization)
    if secret:
        principal = state.hub.principal(secret, anonymous_read=anonymous_read)
    else:
        principal = state.tokens.principal(header, anonymous_read=anonymous_read)
    return _cookie_checked(request, cookie, principal)


def _cookie_checked(request: Request, cookie: str | None, principal: Principal) -> Principal:
    if cookie is None:
        return principal
    csrf.check(request, cookie)
    return replace(principal, csrf_token=csrf.token_for(cookie))


def _admin(who: Principal, namespace: str) -> bool:
    role = who.role_on(namespace)
    return role is not None and role.allows(Role.admin)


def shown_path(path: Path | str, settings: Settings, who: Principal, namespace: str) -> str:
    """A path on the volume as a caller may see it: whole for an admin of the namespace,
    else relative to the volume (where the volume is mounted is the operator's business)."""
    if _admin(who, namespace):
        return str(path)
    try:
        return str(Path(path).relative_to(settings.root))
    except ValueError:
        return str(path)  # not on the volume (a bucket URL)


def shown_version(row: dict[str, Any], settings: Settings, who: Principal,
                  namespace: str) -> dict[str, Any]:
    """A version's summary or detail as a caller may see it: volume paths, in its error
    message too, relative to the volume unless the caller is an admin of the namespace."""
    if _admin(who, namespace):
        return row
    root = str(settings.root).rstrip("/")
    out = dict(row)
    if out.get("error"):
        out["error"] = out["error"].replace(root + "/", "").replace(root, ".")
    if "artifacts" in out:
        out["artifacts"] = {kind: {**a, "path": shown_path(a["path"], settings, who,
                                                           namespace)}
                            for kind, a in out["artifacts"].items()}
    return out


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """The request body, refused past ``limit`` bytes without reading it all. Only bytes
    are gathered here, on the event loop: decoding tens of megabytes would hold the loop,
    so the caller decodes in a worker thread. (``service.admission`` has read the body
    already and hands it over in one message, which is returned as it is: no copy.)"""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body larger than the limit of {limit} bytes")
        if chunk:
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def get_db(request: Request) -> Database:
    return request.app.state.db


#: Ended before the response is sent (FastAPI's default ends it after): a write that cannot
#: commit (the database went away) answers 503, never a success already sent, nor a reset.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


#: A version in a path: its number, or ``current`` (the environment's current version).
VersionRef = Annotated[str, FastAPIPath(
    pattern=r"^(current|[1-9][0-9]{0,9})$", max_length=10,
    description="A version number, or `current` for the environment's current version.")]


def resolve_version(session: Session, who: Principal, namespace: str, name: str,
                    ref: str) -> int:
    """The number ``ref`` names; ``current`` is looked up only for a caller who may read
    the namespace (so an unreadable environment does not say it exists)."""
    if ref != "current":
        value = int(ref)
        if value > 2**31 - 1:
            raise Invalid(f"no version number is that large: {ref}")
        return value
    from envyard.service.catalog import check_name, find_environment

    check_name("namespace", namespace), check_name("environment", name)  # (before the route)
    who.require(namespace, Role.viewer)

    env = find_environment(session, namespace, name)
    if env.current_version is None:
        raise NotFound(f"{namespace}/{name} has no current version yet")
    return env.current_version


def version_number(namespace: str, name: str, number: VersionRef, session: SessionDep,
                   who: PrincipalDep) -> int:
    """A route's ``{number}``: a version number, or ``current``."""
    return resolve_version(session, who, namespace, name, number)
