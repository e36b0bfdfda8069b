"""The embedded JupyterHub of ``envyard serve --hub``: a real hub beside the service.

envyard writes ``<root>/hub/jupyterhub_config.py`` (two lines calling ``configure`` with the
values below) and runs JupyterHub from the same Python: configurable-http-proxy from npm,
the dummy login, the simple local spawner, envyard registered as the ``envyard`` service
with OAuth, users' servers given ``JUPYTER_PATH`` = the kernel directories of the
namespaces they may read and JupyterLab with an "envyard" launcher tile
(``jupyter_launcher``); the spawn page offers the environments the user may start
in (``spawn``), the chosen one the server's default kernel and ``PATH``. Secrets
(service and proxy tokens) are made per start and passed in the environment, never
written. The hub dies with the service (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from envyard.builder.layout import envyard_home
from envyard.service.errors import HubError
from envyard.service.settings import HubSettings, Settings

TOKEN_ENV = "ENVYARD_HUB__SERVICE_TOKEN"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_proxy(command: str) -> str:
    """configurable-http-proxy on PATH, else where `tests/setup.sh` puts it (npm --prefix)."""
    home = envyard_home()
    for candidate in (command, str(home / "node/node_modules/.bin" / command)):
        found = shutil.which(candidate)
        if found:
            return found
    raise HubError(f"{command} not found: `npm install -g configurable-http-proxy` (or set "
                   "ENVYARD_HUB__PROXY_COMMAND to its path)")


def _singleuser() -> list[str]:
    script = Path(sys.executable).with_name("jupyterhub-singleuser")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jupyterhub.singleuser"]


class EmbeddedHub:
    """One JupyterHub process (and the proxy it starts), configured for this service."""

    def __init__(self, settings: Settings, service_url: str) -> None:
        if importlib.util.find_spec("jupyterhub") is None:
            raise HubError("JupyterHub is not installed: pip install 'envyard[hub]'")
        self.dir = settings.root / "hub"
        self.public_url = f"http://{settings.host}:{settings.hub.port}"
        self.token = secrets.token_hex(32)
        self.values: dict[str, Any] = {
            "dir": str(self.dir), "public_url": self.public_url,
            "hub_port": _free_port(), "proxy_api_port": _free_port(),
            "proxy_command": find_proxy(settings.hub.proxy_command),
            "singleuser": _singleuser(), "service_name": settings.hub.service_name,
            "service_url": service_url, "jupyter_root": str(settings.root / "jupyter"),
            "grants": dict(settings.hub.grants), "password": settings.hub.password,
            "group_grants": {g: dict(r) for g, r in settings.hub.group_grants.items()},
            "groups": settings.hub.groups, "admin_users": settings.hub.admin_users,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def settings_for_service(self, settings: Settings) -> Settings:
        """The service's settings, pointed at this hub."""
        hub = HubSettings.model_validate({
            **settings.hub.model_dump(),
            "api_url": f"http://127.0.0.1:{self.values['hub_port']}/hub/api",
            "public_url": self.public_url, "service_token": self.token})
        return settings.model_copy(update={  # (re-reading the environment would not do)
            "hub": hub, "trusted_proxies": ["127.0.0.1"]})  # the hub's proxy: the client

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "jupyterhub_config.py"
        config.write_text("# written by `envyard serve --hub` at every start\n"
                          "from envyard.service.hub import configure\n"
                          f"configure(c, {json.dumps(self.values)!r})\n")
        env = {**os.environ, TOKEN_ENV: self.token,
               "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32)}
        with (self.dir / "jupyterhub.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=self.dir,
                env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise HubError(f"JupyterHub exited; see {self.dir / 'jupyterhub.log'}")
            try:
                if httpx.get(f"{self.public_url}/hub/api/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise HubError(f"JupyterHub not ready in {timeout:.0f} s; see "
                       f"{self.dir / 'jupyterhub.log'}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the hub stops the proxy and user servers
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _launcher_config(config_dir: Path) -> Path:
    """A config directory for user servers that enables the "envyard" launcher tile with a
    drop-in file, as a user image has it (see ``jupyter_launcher``); a user's own
    ``~/.jupyter`` config is read as well."""
    from envyard.service.jupyter_launcher import server_config

    drop_in = config_dir / "jupyter_server_config.d" / "envyard.json"
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(json.dumps(server_config(), indent=2) + "\n")
    return config_dir


def configure(c: Any, values_json: str) -> None:
    """Apply envyard's values to a JupyterHub config object (runs inside the hub process)."""
    from envyard.service import spawn
    from envyard.service.hub_auth import jupyter_path, readable_path

    v = json.loads(values_json)
    hub_dir, name, public = Path(v["dir"]), v["service_name"], v["public_url"]
    c.JupyterHub.bind_url = public + "/"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{v['hub_port']}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{v['proxy_api_port']}"
    c.ConfigurableHTTPProxy.command = [v["proxy_command"]]
    c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub_dir / "cookie_secret")
    c.JupyterHub.authenticator_class = "dummy"
    c.Authenticator.allow_all = True
    if v["password"]:
        c.DummyAuthenticator.password = v["password"]
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(hub_dir / "home" / "{username}")
    c.Spawner.cmd = v["singleuser"]
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]
    c.JupyterHub.load_groups = {g: {"users": users} for g, users in v["groups"].items()}
    c.Authenticator.admin_users = set(v["admin_users"])
    root, grants, group_grants = Path(v["jupyter_root"]), v["grants"], v["group_grants"]

    async def kernels_the_user_reads(spawner: Any) -> None:
        """``JUPYTER_PATH`` from envyard's own answer about the server's token (grants,
        groups and shares), so the kernels a server lists are the API's decision; the
        hub grants alone if envyard does not answer."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.get(f"{v['service_url']}/api/v1/whoami", headers={
                    "Authorization": f"token {spawner.api_token}"})
            resp.raise_for_status()
            path = readable_path(root, resp.json()["roles"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            spawner.log.warning("envyard did not say what %s reads (%s); the kernels of "
                                "the hub grants are listed", spawner.user.name, exc)
            path = jupyter_path(root, spawner.user.name, grants,
                                [g.name for g in spawner.user.groups], group_grants)
        spawner.environment = {**spawner.environment, "JUPYTER_PATH": path}
        await spawn.apply_choice(spawner, v["service_url"], root.parent)

    c.Spawner.pre_spawn_hook = kernels_the_user_reads
    # the spawn page offers the environments envyard says the user may start in
    c.Spawner.options_form = spawn.options_form(v["service_url"], name)
    c.Spawner.options_from_form = spawn.options_from_form
    c.Spawner.environment = {
        "JUPYTER_CONFIG_PATH": str(_launcher_config(hub_dir / "jupyter_config")),
        "ENVYARD_SERVER": f"{public}/services/{name}"}
    access = f"access:services!service={name}"
    # users (and their servers' tokens) may call envyard; envyard decides what they may do
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", access]}]
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", access]
    c.JupyterHub.services = [{
        "name": name, "url": v["service_url"], "api_token": os.environ[TOKEN_ENV],
        "oauth_no_confirm": True, "oauth_redirect_uri": f"{public}/services/{name}/oauth_callback",
    }]
