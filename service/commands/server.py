"""Commands that run the service itself: serve, worker."""

from __future__ import annotations

import argparse
from typing import Any

from envyard.service.console import info


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from envyard.service import logs
    from envyard.service.app import create_app
    from envyard.service.settings import load_settings

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.hub_port:
        overrides["hub"] = {"port": args.hub_port}
    settings = load_settings(**overrides)
    logs.configure(settings.log_format, "debug" if args.log_level == "debug" else "info")
    hub = None
    if args.hub:
        from envyard.service.hub import EmbeddedHub

        hub = EmbeddedHub(settings, f"http://{settings.host}:{settings.port}")
        settings = hub.settings_for_service(settings)
        hub.start()
    info(f"envyard serving on http://{settings.host}:{settings.port} "
         f"(API docs at /docs; volume {settings.root})")
    if hub:
        info(f"JupyterHub at {hub.public_url} (log in as any user"
             f"{'' if settings.hub.password else ', any password'}); envyard behind it at "
             f"{hub.public_url}/services/{settings.hub.service_name}/")
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port,
        log_level=args.log_level, proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        timeout_graceful_shutdown=REQUEST_GRACE, timeout_keep_alive=KEEP_ALIVE)
    try:
        _server(config).run()
    finally:
        if hub:
            hub.stop()
    info("envyard stopped")


#: Seconds an idle connection stays open: longer than the proxies in front keep theirs
#: (configurable-http-proxy, nginx: 60 s), so a proxy never reuses a connection the service
#: has just closed, which its client sees as a reset or a 502 (uvicorn's default is 5 s).
KEEP_ALIVE = 75

#: Seconds in-flight requests (log streams included) get when the service stops.
REQUEST_GRACE = 5


def _server(config: Any) -> Any:
    """uvicorn's server, except that the stop signal (SIGTERM from Kubernetes, systemd or
    `docker stop`; SIGINT) is not re-raised once the server has shut down: uvicorn does
    that, which killed the process before the hub it runs was stopped (exit 143)."""
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()  # shut down cleanly: exit normally

    return Server(config)


def cmd_worker(args: argparse.Namespace) -> None:
    from envyard.builder.layout import Layout
    from envyard.service import logs
    from envyard.service.buildstate import BuildContext
    from envyard.service.db import Database
    from envyard.service.kube_jobs import claim_of
    from envyard.service.settings import load_settings
    from envyard.service.storage import open_store
    from envyard.service.worker import run_claimed

    settings = load_settings()
    logs.configure(settings.log_format)
    ctx = BuildContext(settings, Database(settings.db_url), Layout(settings.root),
                       open_store(settings))
    claim = f"job/{args.job}" if args.job else claim_of(args.version_id)
    code = run_claimed(ctx, args.version_id, claim)
    if code:
        raise SystemExit(code)


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the envyard service (HTTP API and builds)",
                       description="Run the service with the settings from ENVYARD_* "
                       "variables and the YAML file named by ENVYARD_CONFIG. Defaults: "
                       "SQLite and a volume under ~/.envyard/volume, builds in-process. "
                       "Grouped settings (image, hub, storage, kubernetes) are "
                       "ENVYARD_GROUP__NAME, e.g. ENVYARD_IMAGE__REGISTRY, or image: "
                       "{registry: …} in the file.")
    p.add_argument("--host", help="address to bind (setting: host)")
    p.add_argument("--port", type=int, help="port to bind (setting: port)")
    p.add_argument("--hub", action="store_true",
                   help="also run a JupyterHub (configurable-http-proxy from npm, local "
                   "spawner) with envyard as its service: hub users log in to envyard and "
                   "see the kernels of the namespaces they may read")
    p.add_argument("--hub-port", type=int, help="the hub's public port (setting: hub.port)")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="build one queued version (what a build Job runs)",
                       description="Build version VERSION_ID of the service's database "
                       "(same settings as `envyard serve`) in this process, then exit: 0 "
                       "when nothing is left to do, 3 when the build failed (its error is "
                       "recorded; retrying cannot help), another code when the pod should "
                       "be retried. The Kubernetes runner's Jobs run this.")
    p.add_argument("version_id", type=int, metavar="VERSION_ID")
    p.add_argument("--job", help="the Job's name: the claim this worker builds under")
    p.set_defaults(func=cmd_worker)
