"""The "envyard" launcher tile (``envyard.service.jupyter_launcher``): in a hub user's
JupyterLab, one tile that opens envyard's web UI at ``$ENVYARD_SERVER/ui/``.

The tile is jupyter-server-proxy's (its labextension makes tiles from ``servers-info``; a
tile opens ``<base_url><path_info>``); the user's server answers that path with a 302 to
the configured URL and nothing else. Checked over HTTP with a hub token, then in a real
browser (Debian's chromium, driven by Playwright): log in, open Lab, click the tile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from envyard.service.jupyter_launcher import server_config, ui_url
from tests.hub.hubclient import HubUser
from tests.servers import Service, free_port, stop_process
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

@pytest.mark.parametrize(("value", "expected"), [
    ("http://127.0.0.1:8000/services/envyard", "http://127.0.0.1:8000/services/envyard/ui/"),
    ("https://hub.example.org/services/envyard/", "https://hub.example.org/services/envyard/ui/"),
    (None, None), ("", None), ("/services/envyard", None), ("//evil.example/x", None),
    ("javascript:alert(1)//", None), ("ftp://hub.example.org/x", None), ("http://", None),
    ("http://hub.example.org/x?next=/", None), ("http://hub.example.org/x#y", None),
    ("http://hub.example.org/x?", None), ("http://hub.example.org/x\r\nSet-Cookie: a=b", None),
    ("http://hub.exa mple.org/x", None),
])
def test_ui_url_is_the_configured_url_or_nothing(value: str | None, expected: str | None
                                                 ) -> None:
    assert ui_url({} if value is None else {"ENVYARD_SERVER": value}) == expected


def test_the_entry_joins_the_users_own_server_proxy_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linked before jupyter-server-proxy loads, the extension adds its entry to the
    ``ServerProxy.servers`` of the user's config (a config file's ``update()`` included),
    which jupyter-server-proxy then reads: a tile, no route, and no warning about an entry
    without a command (warnings are errors here). A user's own "envyard" entry is kept."""
    from jupyter_server.serverapp import ServerApp
    from jupyter_server_proxy.config import ServerProxy, make_handlers

    from envyard.service import jupyter_launcher

    monkeypatch.setenv("ENVYARD_SERVER", "http://127.0.0.1:1/services/envyard")
    app = ServerApp(runtime_dir=str(tmp_path))
    app.config.ServerProxy.servers.update({"other": {"command": ["true"]}})
    jupyter_launcher._link_jupyter_server_extension(app)
    servers = ServerProxy(parent=app).servers
    assert sorted(servers) == ["envyard", "other"]
    entry = servers["envyard"].launcher_entry
    assert (entry.title, entry.path_info, entry.enabled) == ("envyard", "envyard/", True)
    assert Path(entry.icon_path).read_text() == jupyter_launcher.ICON
    assert [h[0] for h in make_handlers("/user/a/", list(servers.values()))] == [
        "/user/a/other/(.*)", "/user/a/other"]

    own = ServerApp(runtime_dir=str(tmp_path))
    own.config.ServerProxy.servers = {"envyard": {"launcher_entry": {"title": "mine"}}}
    jupyter_launcher._link_jupyter_server_extension(own)
    assert own.config.ServerProxy.servers == {"envyard": {"launcher_entry": {"title": "mine"}}}

    monkeypatch.delenv("ENVYARD_SERVER")
    unset = ServerApp(runtime_dir=str(tmp_path))
    jupyter_launcher._link_jupyter_server_extension(unset)
    assert ServerProxy(parent=unset).servers == {}


@contextmanager
def jupyter_server(tmp_path: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """A plain Jupyter server (no hub) with the launcher enabled by the drop-in file the
    embedded hub writes; a client with its token, based at its base URL ``/user/a.b/``."""
    drop_in = tmp_path / "config" / "jupyter_server_config.d" / "envyard.json"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text(json.dumps(server_config()))
    port, base = free_port(), "/user/a.b/"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "ENVYARD"))}
    environ.update(HOME=str(tmp_path / "home"), JUPYTER_CONFIG_PATH=str(drop_in.parent.parent),
                   **env)
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.base_url={base}", "--IdentityProvider.token=t"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with (tmp_path / "server.log").open("ab") as log:
        proc = subprocess.Popen(cmd, env=environ, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}{base}", timeout=30,
                          headers={"Authorization": "token t"})
    try:
        def up() -> bool:
            if proc.poll() is not None:
                log = (tmp_path / "server.log").read_text()
                raise RuntimeError(f"jupyter server exited: {log}")
            return client.get("api/status").status_code == 200

        wait_until(up, timeout=60, what="the jupyter server to answer",
                   ignoring=(httpx.TransportError,))
        yield client
    finally:
        client.close()
        stop_process(proc)


def test_without_envyard_server_there_is_no_tile_and_the_path_says_why(tmp_path: Path) -> None:
    with jupyter_server(tmp_path, {}) as server:
        listed = server.get("server-proxy/servers-info").json()["server_processes"]
        assert [p["name"] for p in listed] == []
        refused = server.get("envyard/", follow_redirects=False)
        assert refused.status_code == 404 and "ENVYARD_SERVER" in refused.text
    log = (tmp_path / "server.log").read_text()
    assert "ENVYARD_SERVER is not set to an http(s) URL: no envyard launcher tile" in log


def test_alices_server_lists_the_tile_and_it_redirects_to_envyards_ui(hub: Service) -> None:
    hub_url: str = hub.hub_url  # type: ignore[attr-defined]
    # the hub enables the extension for user servers as a user image would: a drop-in file
    drop_in = hub.root / "hub" / "jupyter_config" / "jupyter_server_config.d" / "envyard.json"
    assert json.loads(drop_in.read_text()) == server_config()
    alice = HubUser(hub_url, "alice")
    start = time.monotonic()
    alice.start_server()
    started = time.monotonic() - start
    # JupyterHub 6's singleuser server is JupyterLab once jupyterlab is installed
    home = alice.api.get("/user/alice/", follow_redirects=False)
    assert home.status_code == 302
    assert urlsplit(home.headers["location"]).path == "/user/alice/lab"
    lab = alice.api.get("/user/alice/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text

    listed = alice.api.get("/user/alice/server-proxy/servers-info").json()["server_processes"]
    entry = {p["name"]: p for p in listed}["envyard"]
    assert entry == {"name": "envyard", "new_browser_tab": True, "launcher_entry": {
        "enabled": True, "title": "envyard", "path_info": "envyard/", "category": "Notebook",
        "icon_url": "/user/alice/server-proxy/icon/envyard"}}
    icon = alice.api.get(entry["launcher_entry"]["icon_url"])
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")

    # the tile's URL as jupyter-server-proxy's labextension makes it: base URL + path_info
    tile = "/user/alice/" + entry["launcher_entry"]["path_info"]
    ui = f"{hub_url}/services/envyard/ui/"
    assert alice.api.get(tile, follow_redirects=False).headers["location"] == ui
    # nothing of the request goes into the target: no open redirect
    for attempt in (alice.api.get(tile, params={"next": "//evil.example/"}),
                    alice.api.get(tile, params={"url": "https://evil.example/"}),
                    alice.api.get(tile, headers={"X-Forwarded-Host": "evil.example",
                                                 "X-Forwarded-Proto": "https"}),
                    alice.api.get(tile.rstrip("/"))):
        assert (attempt.status_code, attempt.headers["location"]) == (302, ui), attempt.url
    assert alice.api.get(tile + "evil.example").status_code == 404
    # only for a logged-in user: anyone else is sent to the hub to log in
    anonymous = httpx.get(hub_url + tile, follow_redirects=False)
    assert anonymous.status_code == 302 and "/services/envyard/" not in \
        anonymous.headers["location"]
    print(f"\nalice's server (JupyterLab + launcher) ready in {started:.1f} s")
    alice.close()


@pytest.mark.slow
def test_in_a_browser_the_tile_opens_envyards_ui(hub: Service, browser: Any,
                                                 tmp_path: Path) -> None:
    from playwright.sync_api import Request

    hub_url: str = hub.hub_url  # type: ignore[attr-defined]
    alice = HubUser(hub_url, "alice")
    alice.start_server()  # (running already if the test above ran)
    alice.close()
    navigations: list[Request] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        start = time.monotonic()
        page.goto(f"{hub_url}/hub/login")
        page.fill("#username_input", "alice")
        page.fill("#password_input", "pw")
        with page.expect_navigation():
            page.click("#login_submit")
        assert "/hub/login" not in page.url, page.url

        page.goto(f"{hub_url}/user/alice/lab")
        card = page.locator(".jp-Launcher .jp-LauncherCard", has_text="envyard")
        card.wait_for(timeout=60_000)
        launcher = time.monotonic() - start
        page.screenshot(path=tmp_path / "launcher.png")
        # jupyter-server-proxy marks a tile that opens a new browser tab with " [↗]"
        assert card.locator(".jp-LauncherCard-label").inner_text().strip() == "envyard [↗]"
        assert card.get_attribute("data-category") == "Notebook"  # (icons only there)
        icon = card.locator("img").get_attribute("src") or ""
        assert icon.endswith("/user/alice/server-proxy/icon/envyard"), icon

        context.on("request", lambda r: navigations.append(r)
                   if r.is_navigation_request() else None)
        with context.expect_page() as opened:
            card.click()
        tab = opened.value
        tab.locator("main:not([aria-busy]) h1", has_text="Environments").wait_for()
        reached = tab.url
    finally:
        context.close()
    ui = f"{hub_url}/services/envyard/ui/"
    to_ui = [r for r in navigations if r.url == ui]
    assert to_ui, [r.url for r in navigations]
    assert to_ui[0].redirected_from is not None
    assert to_ui[0].redirected_from.url == f"{hub_url}/user/alice/envyard/"
    assert reached.startswith(f"{hub_url}/services/envyard/ui/"), reached  # logged in
    print(f"\nlogin + Lab's launcher in {launcher:.1f} s; the tile went "
          f"{' -> '.join(r.url for r in navigations)}; the tab is at {reached}; "
          f"screenshot {tmp_path / 'launcher.png'}")
