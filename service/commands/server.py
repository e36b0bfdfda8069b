"""Commands that run or administer the service itself: serve, worker, token create."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from envyard.service.console import emit_json, info


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


def _days(value: str) -> float:
    """``--expires-in-days``: a finite number of days in (0, 3650]."""
    import math

    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not math.isfinite(days) or not 0 < days <= 3650:
        raise argparse.ArgumentTypeError(f"{value!r}: must be more than 0 and at most 3650 "
                                         "days (leave the option out: never expires)")
    return days


def _roles(pairs: list[str]) -> dict[str, Any]:
    from envyard.service.catalog import check_name
    from envyard.service.errors import ServiceError
    from envyard.service.models import Role

    roles = {}
    for pair in pairs:
        ns, _, role = pair.partition("=")
        if ns != "*":
            check_name("namespace", ns)
        try:
            roles[ns] = Role(role)
        except ValueError:
            raise ServiceError(f"--role {pair}: role must be one of viewer, developer, "
                               "admin") from None
    return roles


def cmd_token_create(args: argparse.Namespace) -> None:
    from envyard.service import audit
    from envyard.service.auth import create_token
    from envyard.service.db import Database, migrate
    from envyard.service.settings import load_settings

    roles = _roles(args.role)
    settings = load_settings()
    settings.root.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    migrate(db.engine)
    expires = dt.timedelta(days=args.expires_in_days) if args.expires_in_days is not None \
        else None
    with db.session(write=True) as s:
        secret = create_token(s, name=args.name, roles=roles, expires_in=expires)
        audit.record(s, audit.local_user(), audit.Action.token_create, name=args.name,
                     roles={k: v.value for k, v in roles.items()},
                     expires_in_days=args.expires_in_days)
    if args.json:
        emit_json({"token": secret, "name": args.name,
                   "roles": {k: v.value for k, v in roles.items()}})
    else:
        print(secret)
        info("shown once; store it now (ENVYARD_TOKEN or ~/.config/envyard/client.yml)")


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

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION")
    p = token.add_parser("create", help="create a token and print it once",
                         description="Create a token in the service's database (same "
                         "settings as `envyard serve`).")
    p.add_argument("--name", required=True, help="who or what the token is for")
    p.add_argument("--role", action="append", required=True, metavar="NAMESPACE=ROLE",
                   help="e.g. team=developer, or '*=admin' for every namespace; repeatable")
    p.add_argument("--expires-in-days", type=_days, metavar="DAYS",
                   help="lifetime in days, more than 0 and at most 3650 (fractions work: "
                   "0.5 is 12 hours); default: never expires")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_create)
