"""The FastAPI application: settings in, database migrated, runner started, routers mounted.

Every error becomes a JSON answer in one place (``_errors``): envyard's own errors by
their status, an exhausted or locked database as 503 with ``Retry-After``, a full disk
as 507, anything else as a logged 500. Every answer carries the security headers.
"""

from __future__ import annotations

import errno
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from envyard.builder.errors import EnvyardError
from envyard.builder.layout import Layout
from envyard.service.admission import Admission
from envyard.service.auth import TokenCache
from envyard.service.buildstate import BuildContext
from envyard.service.dask import seed_pins
from envyard.service.db import Database, migrate
from envyard.service.errors import InsufficientStorage, Unavailable, http_status
from envyard.service.inputs import UploadChecker
from envyard.service.jobs import LocalRunner
from envyard.service.package_search import PackageSearch
from envyard.service.runners import Runner
from envyard.service.settings import Settings, load_settings
from envyard.service.storage import open_store

logger = logging.getLogger("envyard")


def _scheduled_gc(db: Database, settings: Settings, stop: threading.Event) -> None:
    """Apply the retention rules every ``gc_interval`` seconds until the app stops."""
    from envyard.service.gc import apply_plan

    while not stop.wait(settings.gc_interval):
        try:
            apply_plan(db, settings)
        except Exception as exc:  # keep the schedule alive; the next run retries
            logger.warning("scheduled gc failed: %s: %s", type(exc).__name__, exc)


def make_runner(ctx: BuildContext) -> Runner:
    if ctx.settings.runner == "kubernetes":
        from envyard.service.kube_runner import KubernetesRunner

        return KubernetesRunner(ctx)
    return LocalRunner(ctx)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    settings.root.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url, settings.db_pool_size)
    store = open_store(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        from envyard.service.follow import LogFollowers

        # the pool is sized from this: requests never wait on each other for connections
        anyio.to_thread.current_default_thread_limiter().total_tokens = \
            settings.request_threads
        app.state.followers = LogFollowers(db)
        migrate(db.engine)
        seed_pins(db, settings)
        runner = make_runner(BuildContext(settings, db, Layout(settings.root), store))
        app.state.runner = runner
        runner.recover()
        stop = threading.Event()
        if settings.gc_interval > 0:
            threading.Thread(target=_scheduled_gc, args=(db, settings, stop), daemon=True,
                             name="envyard-gc").start()
        yield
        stop.set()
        app.state.followers.close()
        app.state.package_search.close()
        if getattr(app.state, "platform_packs", None) is not None:
            app.state.platform_packs.close()  # made on first use (service.platform_packs)
        runner.shutdown(settings.shutdown_grace)
        db.engine.dispose()

    app = FastAPI(title="envyard", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # served from the package: service.api.docs
                  description="Conda environments as immutable numbered versions: submit an "
                  "environment.yml or push a conda-lock.yml; follow the build; download the "
                  "spec, lock, pack and log.")
    app.state.settings = settings
    app.state.db = db
    app.state.store = store
    app.state.hub = None
    app.state.tokens = TokenCache(db)
    app.state.checker = UploadChecker()
    app.state.package_search = PackageSearch(settings, Layout(settings.root).cache)
    _errors(app)
    app.add_middleware(Admission, max_requests=settings.max_requests,
                       max_followers=settings.max_log_followers,
                       processing=settings.request_threads,
                       max_spec_bytes=settings.max_spec_bytes,
                       max_lock_bytes=settings.max_lock_bytes)
    app.add_middleware(SecurityHeaders, hub_url=settings.hub.browser_url)
    if settings.hub.api_url:
        from envyard.service.hub_auth import HubIdentities

        app.state.hub = HubIdentities(settings.hub, app.state.db)
        app.add_middleware(ServicePrefix, prefix=f"/services/{settings.hub.service_name}")

    from envyard.service.api import (
        audit,
        dask,
        docs,
        environments,
        gc,
        identity,
        images,
        lifecycle,
        metrics,
        namespaces,
        packages,
        queue,
        spawn,
        tokens,
        versions,
    )
    from envyard.service.ui import routes as ui

    for module in (namespaces, environments, versions, lifecycle, gc, dask, metrics, identity,
                   tokens, images, packages, audit, queue, spawn, docs, ui):
        app.include_router(module.router)
    return app


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None,
                line: int | None = None) -> JSONResponse:
    """``{"detail": …}``, and the ``line`` of the upload it is about when known (an
    editor marks it)."""
    body: dict[str, Any] = {"detail": detail}
    if line is not None:
        body["line"] = line
    return JSONResponse(body, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    """Every error a request can meet, answered as JSON with the status it deserves."""

    @app.exception_handler(EnvyardError)
    async def _envyard_error(request: Request, exc: EnvyardError) -> JSONResponse:
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, Unavailable):
            headers = {"Retry-After": str(exc.retry_after)}
        line = getattr(exc, "line", None)
        return _json_error(status, str(exc), headers, line if isinstance(line, int) else None)

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("no database connection free for %s %s", request.method,
                       request.url.path)
        return _json_error(503, "the service is busy (no database connection free); retry "
                           "shortly", {"Retry-After": "2"})

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
        text = str(exc)
        if "disk is full" in text or "No space left" in text:
            return _disk_full(request, exc)
        logger.warning("database unavailable for %s %s: %s", request.method,
                       request.url.path, text.splitlines()[0])
        return _json_error(503, "the database is unavailable or busy; retry shortly",
                           {"Retry-After": "5"})

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _disk_full(request, exc)
        return await _bug(request, exc)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        logger.error("internal error %s in %s %s", ref, request.method, request.url.path,
                     exc_info=exc)
        return _json_error(500, f"internal error (logged as {ref}); please report it")

    def _disk_full(request: Request, exc: Exception) -> JSONResponse:
        logger.error("the volume %s is full: %s", app.state.settings.root, exc)
        err = InsufficientStorage("the service's shared volume is full; an operator must "
                                  "free space (`envyard gc`) before it accepts more")
        return _json_error(err.status, str(err))


class SecurityHeaders:
    """ASGI middleware: no MIME sniffing, no framing except by the hub, no caching of API
    answers (they carry private data), no referrer leaving the origin; the web UI's
    pages load scripts, styles and data from this service only (no inline script)."""

    def __init__(self, app: Any, hub_url: str | None) -> None:
        self.app = app
        hub = ""
        if hub_url:
            from urllib.parse import urlsplit

            split = urlsplit(hub_url)
            hub = f" {split.scheme}://{split.netloc}"
        self.common = [(b"x-content-type-options", b"nosniff"),
                       (b"referrer-policy", b"same-origin"),
                       (b"x-frame-options", b"SAMEORIGIN")]
        self.csp = f"frame-ancestors 'self'{hub}".encode()
        # form-action: the logout form ends at the hub's logout
        self.ui_csp = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                       f"form-action 'self'{hub}; frame-ancestors 'self'{hub}").encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        api = "/api/" in path
        own = path[len(scope.get("root_path", "")):] + "/"  # (behind the hub: its prefix)
        csp = self.ui_csp if own.startswith("/ui/") else self.csp

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [h for h in self.common if h[0] not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", csp))
                if api:
                    headers = [h for h in headers if h[0].lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class ServicePrefix:
    """Serve the app also under the hub's ``/services/<name>`` path (the proxy keeps it)."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app, self.prefix = app, prefix.rstrip("/")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and (
                path == self.prefix or path.startswith(self.prefix + "/")):
            scope = {**scope, "root_path": scope.get("root_path", "") + self.prefix}
        await self.app(scope, receive, send)
