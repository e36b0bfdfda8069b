"""The "envyard" tile in a hub user's JupyterLab launcher: a jupyter_server extension.

Why an extension: jupyter-server-proxy's prebuilt labextension makes launcher tiles from the
``ServerProxy.servers`` entries its server extension lists at ``<base_url>server-proxy/
servers-info``, and a tile opens ``<base_url><launcher_entry.path_info>`` (the labextension
joins the two; an absolute URL cannot be given). envyard is not a process to proxy but a hub
service at another path, so this module

- adds the entry ``envyard`` (no ``command``, no ``port``: jupyter-server-proxy then lists it
  and routes nothing for it) when the extension is linked, which jupyter_server does for every
  extension before it loads any: jupyter-server-proxy reads ``ServerProxy`` config at load.
  A ``ServerProxy.servers["envyard"]`` of the user's own is kept as it is. Without
  ``ENVYARD_SERVER`` (or with one that is not an http(s) URL) there is no tile;
- answers ``<base_url>envyard/`` (the tile's URL) with a 302 to ``$ENVYARD_SERVER/ui/``, read
  from the environment at each request. The target is that configured URL only: nothing of
  the request (path, query, Host) goes into it, so it is no open redirect. Unset: 404.

The tile opens a new browser tab (jupyter-server-proxy marks such a title with " [↗]").

The embedded hub (``envyard serve --hub``, ``envyard.service.hub.configure``) enables the
extension with a drop-in file in a config directory of its own, on user servers'
``JUPYTER_CONFIG_PATH``. A Kubernetes user image (z2jh's ``singleuser.image``) needs:

- ``pip install envyard jupyterlab 'jupyter-server-proxy>=4.1'`` (envyard here is the laptop
  CLI; jupyterlab and jupyter-server-proxy ship their frontends prebuilt: no JavaScript
  build, no ``jupyter lab build``);
- the drop-in ``/etc/jupyter/jupyter_server_config.d/envyard.json`` holding
  ``{"ServerApp": {"jpserver_extensions": {"envyard.service.jupyter_launcher": true}}}``
  (:func:`server_config`; it adds to, never replaces, an image's own
  ``jupyter_server_config.py``);
- ``ENVYARD_SERVER`` in the user pods' environment, e.g. ``singleuser.extraEnv:
  {ENVYARD_SERVER: https://hub.example.org/services/envyard}`` (the service's public URL
  through the hub's proxy, as the embedded hub sets it).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets.config.loader import LazyConfigValue

NAME = "envyard"
"""The ServerProxy entry's name, the tile's title and the path of the redirect."""
ENV = "ENVYARD_SERVER"
#: The tile's icon: the web UI's own (one icon for envyard everywhere).
ICON = (Path(__file__).parent / "ui" / "assets" / "icon.svg").read_text()


def server_config() -> dict[str, Any]:
    """The jupyter_server config that enables this extension (a ``.d`` drop-in's JSON)."""
    return {"ServerApp": {"jpserver_extensions": {__name__: True}}}


def ui_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``$ENVYARD_SERVER/ui/``, or None when the variable is unset or not an http(s) URL
    (with a host and without query or fragment)."""
    server = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not re.fullmatch(r"[!-~]+", server):  # printable ASCII, no space or control character
        return None
    try:
        parts = urlsplit(server)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or server.endswith(("?", "#")):
        return None
    return server.rstrip("/") + "/ui/"


class LaunchHandler(JupyterHandler):
    """``<base_url>envyard/``: to envyard's web UI, the configured URL and nothing else."""

    @web.authenticated
    def get(self) -> None:
        target = ui_url()
        if target is None:
            # (the reason, unlike a message, is what Jupyter's 404 page shows)
            raise web.HTTPError(404, reason=f"No envyard service for this server: {ENV} "
                                            "is not set to an http(s) URL")
        self.redirect(target)


def _write_icon(directory: Path) -> Path:
    path = directory / "envyard-launcher.svg"
    if not path.is_file() or path.read_text() != ICON:
        directory.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}")
        part.write_text(ICON)
        part.replace(path)  # another server of the same user may read it right now
    return path


def launcher_entry(icon: Path) -> dict[str, Any]:
    """The ``ServerProxy.servers`` value: a tile, no process, no proxied route. Its category
    stays jupyter-server-proxy's default, "Notebook": JupyterLab's launcher draws a tile's
    icon (``kernelIconUrl``) in its Notebook and Console sections only."""
    return {"launcher_entry": {"title": NAME, "icon_path": str(icon), "path_info": f"{NAME}/"},
            "new_browser_tab": True}


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": __name__}]


def _link_jupyter_server_extension(serverapp: ServerApp) -> None:
    if ui_url() is None:
        serverapp.log.warning("%s is not set to an http(s) URL: no envyard launcher tile", ENV)
        return
    section = serverapp.config.ServerProxy
    servers = section.get("servers", {})
    if isinstance(servers, LazyConfigValue):  # (an update() in a config file)
        servers = servers.get_value({})
    if NAME in servers:
        serverapp.log.info("ServerProxy.servers[%r] is configured: kept as it is", NAME)
        return
    section.servers = {**servers, NAME: launcher_entry(_write_icon(Path(serverapp.runtime_dir)))}
    # an entry without command or port is a tile only; jupyter-server-proxy warns about it
    warnings.filterwarnings("ignore", category=UserWarning, module="jupyter_server_proxy",
                            message=f"Server proxy {NAME} does not have a command, port")


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    base = re.escape(serverapp.web_app.settings["base_url"])
    serverapp.web_app.add_handlers(".*", [(url_path_join(base, f"{NAME}/?"), LaunchHandler)])
    serverapp.log.info("envyard launcher: %senvyard/ -> %s", serverapp.base_url, ui_url())
