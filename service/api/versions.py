"""Versions: list, read, follow the log, download spec/lock/pack/log, cancel, diff; a
version is named by its number or ``current``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from envyard.builder.diff import diff_locks
from envyard.builder.layout import Layout
from envyard.builder.lock import Lockfile
from envyard.builder.render import render_explicit, render_pinned
from envyard.service import audit
from envyard.service.api.deps import (
    DbDep,
    PrincipalDep,
    RunnerDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    VersionRef,
    resolve_version,
    shown_version,
)
from envyard.service.api.params import Name, VersionNumber
from envyard.service.api.schemas import (
    CancelOut,
    VersionDetail,
    VersionDiff,
    VersionPlatforms,
    VersionSummary,
)
from envyard.service.catalog import (
    check_name,
    find_environment,
    find_version,
    version_detail,
    version_lock,
    version_summary,
)
from envyard.service.errors import Conflict, NotFound, Unavailable
from envyard.service.models import Role, Version, utcnow
from envyard.service.platform_packs import Locked, PlatformPacks, platform_pack_key
from envyard.service.storage import ArtifactStore, build_key, pack_key
from envyard.service.storage.local import LocalStore
from envyard.service.transitions import State, request_cancel

router = APIRouter(prefix="/api/v1/environments/{namespace}/{name}/versions",
                   tags=["versions"])


def _check(namespace: Name, name: Name, who: Any, role: Role = Role.viewer) -> None:
    check_name("namespace", namespace)
    check_name("environment", name)
    who.require(namespace, role)


@router.get("", response_model=list[VersionSummary])
def list_versions(namespace: Name, name: Name, session: SessionDep, who: PrincipalDep,
                  settings: SettingsDep, limit: int = Query(100, ge=1, le=1000),
                  offset: int = Query(0, ge=0, le=1_000_000_000)
                  ) -> list[dict[str, Any]]:
    """Versions, newest first."""
    _check(namespace, name, who)
    env = find_environment(session, namespace, name)
    rows = session.scalars(select(Version).where(Version.environment_id == env.id)
                           .order_by(Version.number.desc()).limit(limit).offset(offset))
    return [shown_version(version_summary(v, namespace, name), settings, who, namespace)
            for v in rows]


@router.get("/{number}", response_model=VersionDetail)
def read_version(namespace: Name, name: Name, number: VersionNumber, session: SessionDep,
                 who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """State, timings, sizes and package list of one version."""
    _check(namespace, name, who)
    # the version first: publishing commits its state and the environment's current
    # together, and each statement sees what was committed before it (READ COMMITTED), so
    # a version read as ready is never shown beside the environment as it was before
    detail = version_detail(find_version(session, namespace, name, number), namespace, name)
    current = find_environment(session, namespace, name).current_version
    return {**shown_version(detail, settings, who, namespace), "current": current == number}


def _from_store(store: ArtifactStore, settings: Any, key: str, filename: str,
                media_type: str) -> Response | None:
    """A remote artifact: a redirect to a signed URL if the backend signs, else its bytes
    streamed through here; None when the store does not have it."""
    url = store.signed_url(key, filename, settings.storage.url_seconds)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    if store.stat(key) is None:
        return None
    return StreamingResponse(store.iter_bytes(key), media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


def _log_path(settings: Any, namespace: Name, name: Name, number: int) -> Any:
    return Layout(settings.root).build_dir(namespace, name, number) / "build.log"


@router.get("/{number}/log", responses={200: {"content": {"text/plain": {},
                                                           "text/event-stream": {}}}},
            response_class=PlainTextResponse)
def read_log(namespace: Name, name: Name, number: VersionNumber, db: DbDep, who: PrincipalDep,
             settings: SettingsDep, store: StoreDep, request: Request,
             follow: bool = False) -> Response:
    """The build log; with ``follow=true`` a server-sent event stream until the build ends."""
    _check(namespace, name, who)
    with db.session() as s:  # not held while streaming
        v = find_version(s, namespace, name, number)
        state, version_id = State(v.state), v.id
    if follow:
        followers = request.app.state.followers
        return StreamingResponse(
            followers.follow(version_id, _log_path(settings, namespace, name, number)),
            media_type="text/event-stream", headers={"Cache-Control": "no-store"})
    if state.terminal and not store.local:  # its last word is in the store
        stored = _from_store(store, settings, build_key(namespace, name, number, "build.log"),
                             f"{namespace}-{name}-{number}.log", "text/plain")
        if stored is not None:
            return stored
    path = _log_path(settings, namespace, name, number)
    return PlainTextResponse(path.read_text() if path.exists() else "")


@router.get("/{number}/spec", response_class=PlainTextResponse)
def download_spec(namespace: Name, name: Name, number: VersionNumber, session: SessionDep,
                  who: PrincipalDep, settings: SettingsDep, store: StoreDep) -> Response:
    """The environment.yml this version was built from."""
    _check(namespace, name, who)
    v = find_version(session, namespace, name, number)
    if v.spec_text is None:
        raise NotFound(f"version {number} was pushed as a lock; it has no spec")
    return _text((namespace, name), v, store, settings, "environment.yml", v.spec_text)


def _text(where: tuple[str, str], v: Version, store: ArtifactStore, settings: Any,
          filename: str, text: str) -> Response:
    """Spec and lock: from the store once published there (signed URL), else the
    database's copy."""
    if not store.local and v.state == State.ready:
        stored = _from_store(store, settings, build_key(*where, v.number, filename),
                             filename, "text/yaml")
        if stored is not None:
            return stored
    return PlainTextResponse(text, media_type="text/yaml")


@router.get("/{number}/lock", response_class=PlainTextResponse)
def download_lock(namespace: Name, name: Name, number: VersionNumber, session: SessionDep,
                  who: PrincipalDep, settings: SettingsDep, store: StoreDep) -> Response:
    """The conda-lock.yml of this version."""
    _check(namespace, name, who)
    v = find_version(session, namespace, name, number)
    if v.lock_text is None:
        raise NotFound(f"version {number} has no lock yet (state {v.state})")
    return _text((namespace, name), v, store, settings, "conda-lock.yml", v.lock_text)


@router.get("/{number}/explicit", response_class=PlainTextResponse)
def download_explicit(namespace: Name, name: Name, number: VersionNumber, session: SessionDep,
                      who: PrincipalDep, settings: SettingsDep) -> Response:
    """The service platform's ``@EXPLICIT`` file (``conda create --file``), as
    ``conda-lock render -k explicit`` writes it."""
    return PlainTextResponse(render_explicit(_locked(session, namespace, name, number, who),
                                             settings.build_platform()))


@router.get("/{number}/environment.yml", response_class=PlainTextResponse)
def download_pinned_spec(namespace: Name, name: Name, number: VersionNumber,
                         session: SessionDep, who: PrincipalDep,
                         settings: SettingsDep) -> Response:
    """An environment.yml pinned to this version's locked packages (every package
    ``name=version=build``, pip's ``name==version``)."""
    lock = _locked(session, namespace, name, number, who)
    return PlainTextResponse(render_pinned(lock, settings.build_platform(), name=name,
                                           pip_index=settings.pip_index),
                             media_type="text/yaml")


def _locked(session: Any, namespace: str, name: str, number: int, who: Any) -> Lockfile:
    _check(namespace, name, who)
    return version_lock(find_version(session, namespace, name, number))


@router.get("/{number}/pack", response_class=FileResponse)
def download_pack(namespace: Name, name: Name, number: VersionNumber, session: SessionDep,
                  who: PrincipalDep, settings: SettingsDep, store: StoreDep) -> Response:
    """The conda-pack archive: unpack it anywhere, then run bin/conda-unpack. From object
    storage: a redirect to a signed URL."""
    _check(namespace, name, who)
    v = find_version(session, namespace, name, number)
    filename = f"{namespace}-{name}-{number}.tar.zst"
    if v.state == State.ready and v.fingerprint and v.pack_bytes is not None:
        if not store.local:
            found = _from_store(store, settings, pack_key(v.fingerprint), filename,
                                "application/zstd")
            if found is not None:
                return found
        elif (path := Layout(settings.root).pack(v.fingerprint)).exists():
            return FileResponse(path, media_type="application/zstd", filename=filename)
    raise NotFound(f"version {number} has no pack (state {v.state})")


@router.post("/{number}/cancel", response_model=CancelOut)
def cancel_version(namespace: Name, name: Name, number: VersionNumber, db: DbDep, who: PrincipalDep,
                   runner: RunnerDep) -> dict[str, Any]:
    """Cancel a queued or running build; a finished one cannot be cancelled (409)."""
    _check(namespace, name, who, Role.developer)
    with db.session(write=True) as s:
        v = find_version(s, namespace, name, number)
        if State(v.state).terminal:
            raise Conflict(f"version {number} is already {v.state}")
        was = request_cancel(s, v, utcnow())  # recorded: whoever builds it stops
        version_id = v.id
        audit.record(s, who, audit.Action.cancel, namespace, name, number,
                     state=was.value)  # cancelled (it was queued), or the stage it stops in
    runner.cancel(version_id)  # at once, if this process builds it
    with db.session() as s:
        state = find_version(s, namespace, name, number).state
    return {"namespace": namespace, "name": name, "number": number,
            "state": state if State(state).terminal else "cancelling"}


@router.get("/{a}/diff/{b}", response_model=VersionDiff)
def diff_versions(namespace: Name, name: Name, a: VersionRef, b: VersionRef,
                  session: SessionDep, who: PrincipalDep, settings: SettingsDep
                  ) -> dict[str, Any]:
    """What changes from version ``a`` to version ``b`` (either may be ``current``):
    packages added, removed, and changed, each change major, minor, patch or build only."""
    _check(namespace, name, who)
    numbers = [resolve_version(session, who, namespace, name, ref) for ref in (a, b)]
    locks = []
    for number in numbers:
        v = find_version(session, namespace, name, number)
        if not v.lock_text:
            raise Conflict(f"version {number} has no lock ({v.state}): nothing to compare")
        locks.append(version_lock(v))
    diff = diff_locks(locks[0], locks[1], settings.build_platform())
    return {"namespace": namespace, "name": name, "a": numbers[0], "b": numbers[1],
            **diff.as_dict()}


#: ``{platform}`` in a path: a conda subdir's shape (``osx-arm64``, ``linux-aarch64``)
Platform = Annotated[str, FastAPIPath(pattern=r"^[a-z0-9]+-[a-z0-9_]+$", max_length=32)]


def _platform_packs(request: Request, settings: Any, store: ArtifactStore) -> PlatformPacks:
    """This process's platform packs (made on first use, closed when the app stops)."""
    packs: PlatformPacks | None = getattr(request.app.state, "platform_packs", None)
    if packs is None:
        packs = request.app.state.platform_packs = PlatformPacks(settings, store)
    return packs


def _locked_version(db: Any, settings: Any, namespace: str, name: str,
                    number: int) -> tuple[Locked, Lockfile]:
    from envyard.service.inputs import rules_for

    with db.session() as s:
        v = find_version(s, namespace, name, number)
        lock = version_lock(v)  # a 404 without one
        return Locked(v.number, v.lock_text or "", v.spec_text,
                      rules_for(s, settings, namespace)), lock


@router.get("/{number}/platforms", response_model=VersionPlatforms)
def list_platform_packs(namespace: Name, name: Name, number: VersionNumber, db: DbDep,
                        who: PrincipalDep, settings: SettingsDep,
                        store: StoreDep) -> dict[str, Any]:
    """Every platform the version's lock covers, and whether its pack is made yet: a pack
    is the platform's locked packages as a local channel with an unpack script, made from
    the lock without installing it (the first download makes it)."""
    _check(namespace, name, who)
    locked, lock = _locked_version(db, settings, namespace, name, number)
    rows = []
    for platform in lock.metadata.platforms:
        there = store.stat(platform_pack_key(locked.lock_text, platform))
        rows.append({
            "platform": platform,
            "conda_packages": sum(1 for p in lock.selected(platform, "conda")
                                  if not p.name.startswith("__")),
            "pip_packages": len(lock.selected(platform, "pip")),
            "available": there is not None, "bytes": there.size if there else None,
            "url": f"/api/v1/environments/{namespace}/{name}/versions/{number}/packs/"
                   f"{platform}"})
    return {"namespace": namespace, "name": name, "number": number,
            "service_platform": settings.build_platform(), "platforms": rows}


@router.get("/{number}/packs/{platform}", response_class=FileResponse,
            responses={200: {"content": {"application/x-tar": {}}}})
async def download_platform_pack(namespace: Name, name: Name, number: VersionNumber,
                                 platform: Platform, request: Request, db: DbDep,
                                 who: PrincipalDep, settings: SettingsDep,
                                 store: StoreDep) -> Response:
    """The version's pack for ``platform`` (a .tar: extract it, then ``sh unpack.sh
    PREFIX``), made from its lock on the first request: 503 with ``Retry-After`` while
    it is being made. A platform the lock does not cover is a 404 naming those it does."""
    _check(namespace, name, who)
    locked, lock = await run_in_threadpool(_locked_version, db, settings, namespace, name,
                                            number)
    key = await _platform_packs(request, settings, store).ensure(locked, lock, platform)
    filename = f"{namespace}-{name}-{number}-{platform}.tar"
    if isinstance(store, LocalStore):
        return FileResponse(store.path(key), media_type="application/x-tar",
                            filename=filename)
    found = await run_in_threadpool(_from_store, store, settings, key, filename,
                                    "application/x-tar")
    if found is None:  # removed since it was made: the next request makes it again
        raise Unavailable(f"the {platform} pack is being replaced; retry shortly")
    return found
