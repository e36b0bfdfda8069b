"""The FastAPI application: settings in, database migrated, runner started, routers mounted."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from builder.errors import EnvyardError
from builder.layout import Layout
from service.dask import seed_pins
from service.db import Database, migrate
from service.errors import http_status
from service.jobs import LocalRunner
from service.runners import Runner
from service.settings import Settings
from service.storage import open_store
from service.worker import BuildContext


def _scheduled_gc(db: Database, settings: Settings, stop: threading.Event) -> None:
    """Apply the retention rules every ``gc_interval`` seconds until the app stops."""
    from service.gc import apply_plan

    while not stop.wait(settings.gc_interval):
        try:
            apply_plan(db, settings)
        except Exception as exc:  # keep the schedule alive; the next run retries
            print(f"envyard: scheduled gc failed: {type(exc).__name__}: {exc}", flush=True)


def make_runner(ctx: BuildContext) -> Runner:
    if ctx.settings.runner == "kubernetes":
        from service.kube_runner import KubernetesRunner

        return KubernetesRunner(ctx)
    return LocalRunner(ctx)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.root.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    store = open_store(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
        runner.shutdown()
        db.engine.dispose()

    app = FastAPI(title="envyard", version="0.1.0", lifespan=lifespan,
                  description="Conda environments as immutable numbered versions: submit an "
                  "environment.yml or push a conda-lock.yml; follow the build; download the "
                  "spec, lock, pack and log.")
    app.state.settings = settings
    app.state.db = db
    app.state.store = store
    app.state.hub = None
    if settings.hub_api_url:
        from service.hub_auth import HubIdentities

        app.state.hub = HubIdentities(settings.hub_api_url, settings.hub_service_name,
                                      dict(settings.hub_grants), settings.hub_admins)
        app.add_middleware(ServicePrefix, prefix=f"/services/{settings.hub_service_name}")

    @app.exception_handler(EnvyardError)
    async def _envyard_error(request: Request, exc: EnvyardError) -> JSONResponse:
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    from service.api import (
        dask,
        environments,
        gc,
        identity,
        images,
        lifecycle,
        metrics,
        namespaces,
        versions,
    )

    for module in (namespaces, environments, versions, lifecycle, gc, dask, metrics, identity,
                   images):
        app.include_router(module.router)
    return app


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
