"""End to end, no mocks: `envyard serve --hub` runs a real JupyterHub (configurable-http-proxy,
local spawner); a hub user logs in, builds through envyard with the hub token, starts a
server, sees exactly the kernels of the namespaces it may read, runs code in one over the
kernel websocket, and sees a rollback change the kernel."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.hub.conftest import wait_for_hub
from tests.hub.hubclient import HubUser
from tests.servers import Service, free_port
from tests.service.conftest import api, wait_ready

pytestmark = pytest.mark.timeout(600)

NB = "dependencies: [python=3.11, ipykernel, dask=2025.12.0, distributed]\n"
NB2 = "dependencies: [python=3.11, ipykernel, dask=2026.1.2, distributed]\n"
CODE = "import dask; print(dask.__version__)"
WHOAMI = ("import json, os, urllib.request as u\n"
          "r = u.Request(os.environ['ENVYARD_SERVER'] + '/api/v1/whoami', headers={\n"
          "    'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
          "print(json.load(u.urlopen(r))['name'])")


def envyard_via_hub(hub: Service, token: str) -> httpx.Client:
    """envyard's API through the hub's proxy, authenticated by a hub token."""
    return httpx.Client(base_url=f"{hub.hub_url}/services/envyard",  # type: ignore[attr-defined]
                        headers={"Authorization": f"token {token}"}, timeout=60)


def submit(c: httpx.Client, env: str, text: str) -> dict:
    resp = c.post(f"/api/v1/environments/{env}/versions", content=text)
    assert resp.status_code == 202, resp.text
    return wait_ready(c, env, resp.json()["version"])


def listed_within(user: HubUser, kernel: str, display: str, timeout: float = 30) -> float:
    """Seconds until the user's server lists ``kernel`` with ``display`` as its name."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        spec = user.kernelspecs().get(kernel)
        if spec and spec["spec"]["display_name"] == display:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{kernel} never listed as {display!r}: {user.kernelspecs()}")


def test_hub_user_kernels_follow_current(hub: Service) -> None:
    admin = httpx.Client(base_url=hub.url, timeout=60,
                         headers={"Authorization": f"Bearer {hub.token('*=admin')}"})
    alice = HubUser(hub.hub_url, "alice")  # type: ignore[attr-defined]
    with envyard_via_hub(hub, alice.token) as c:
        assert c.get("/api/v1/whoami").json() == {
            "name": "hub user 'alice'", "roles": {"alice": "developer", "shared": "viewer"}}
        v1 = submit(c, "alice/geo", NB)
        assert v1["state"] == "ready", v1.get("error")
        submit(admin, "bob/geo", NB2)
        submit(admin, "shared/base", NB2)

        alice.start_server()
        specs = alice.kernelspecs()
        assert {"alice-geo", "shared-base"} <= set(specs)
        assert "bob-geo" not in specs  # alice may not read bob's namespace
        assert specs["alice-geo"]["spec"]["display_name"] == "alice/geo (v1)"
        assert alice.run("alice-geo", CODE).strip() == "2025.12.0"
        # from a notebook, the server's own hub token reaches envyard as alice
        assert alice.run("alice-geo", WHOAMI).strip() == "hub user 'alice'"

        v2 = submit(c, "alice/geo", NB2)
        new_current = listed_within(alice, "alice-geo", "alice/geo (v2)")
        assert alice.run("alice-geo", CODE).strip() == "2026.1.2"

        resp = c.post("/api/v1/environments/alice/geo/rollback", json={"version": 1})
        assert resp.status_code == 200, resp.text
        rolled_back = listed_within(alice, "alice-geo", "alice/geo (v1)")
        assert alice.run("alice-geo", CODE).strip() == "2025.12.0"
        assert v2["number"] == 2
    print(f"\nkernel listed {new_current:.3f} s after a build became current, "
          f"{rolled_back:.3f} s after a rollback")
    alice.close()
    admin.close()


def test_hub_roles_decide_what_a_user_may_do(hub: Service) -> None:
    carol = HubUser(hub.hub_url, "carol")  # type: ignore[attr-defined]
    with envyard_via_hub(hub, carol.token) as c:
        assert c.post("/api/v1/environments/dave/x/versions", content=NB).status_code == 403
        refused = c.post("/api/v1/environments/shared/x/versions", content=NB)
        assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
        assert c.get("/api/v1/namespaces/shared").status_code in (200, 404)
        assert c.get("/api/v1/namespaces/dave").status_code == 403
    # a hub token that does not grant access to the envyard service is refused
    narrow = carol.api.post("/hub/api/users/carol/tokens",
                            json={"scopes": ["read:users:name!user=carol"]}).json()["token"]
    with envyard_via_hub(hub, narrow) as c:
        resp = c.get("/api/v1/whoami")
        assert resp.status_code == 403 and "envyard" in resp.json()["detail"]
    with envyard_via_hub(hub, "not-a-real-token") as c:
        assert c.get("/api/v1/whoami").status_code == 401
    carol.close()


def test_browser_login_through_hub_oauth(hub: Service) -> None:
    erin = HubUser(hub.hub_url, "erin")  # type: ignore[attr-defined]
    browser = erin.browser  # carries only the hub's login cookie
    assert browser.get("/services/envyard/api/v1/whoami").status_code == 401
    page = browser.get("/services/envyard/login",
                       params={"next": "/services/envyard/api/v1/whoami"})
    assert page.status_code == 200, page.text
    assert page.json()["roles"] == {"erin": "developer", "shared": "viewer"}
    assert str(page.url).endswith("/services/envyard/api/v1/whoami")
    # the envyard cookie now authenticates API calls
    assert browser.get("/services/envyard/api/v1/namespaces/erin").status_code in (200, 404)
    # ... but a write by cookie needs the CSRF token (before: any page could submit)
    url = "/services/envyard/api/v1/environments/erin/csrf/versions"
    forged = browser.post(url, content="dependencies: [python=3.11]\n")
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
    for forged in (browser.delete("/services/envyard/api/v1/environments/erin/csrf"),
                   browser.put("/services/envyard/api/v1/environments/erin/csrf/description",
                               json={"description": "defaced"})):
        assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
    csrf = browser.cookies.get("envyard-csrf", path="/services/envyard/")
    assert csrf and browser.get("/services/envyard/api/v1/whoami").json()["csrf_token"] == csrf
    cross = browser.post(url, content="dependencies: [python=3.11]\n",
                         headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and "cross-site" in cross.json()["detail"]
    wrong = browser.post(url, content="dependencies: [python=3.11]\n",
                         headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    ok = browser.post(url, content="dependencies: [python=3.11]\n",
                      headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 202, ok.text
    # an outside `next` is not followed (no open redirect)
    page = browser.get("/services/envyard/login", params={"next": "//evil.example/x"})
    assert page.status_code == 200 and page.url.host == "127.0.0.1"
    # a callback that did not start at /login is refused
    forged = browser.get("/services/envyard/oauth_callback",
                         params={"code": "x", "state": "y"}, follow_redirects=False)
    assert forged.status_code == 401
    erin.close()


def test_hub_users_own_the_tokens_they_make(hub: Service) -> None:
    """A token frank makes (with his hub token, or in the browser with the CSRF header)
    is frank's: any of his tokens, or his hub login, lists and revokes all of them; gina
    sees none of them and cannot revoke one (404, as for an id nobody has)."""
    frank = HubUser(hub.hub_url, "frank")  # type: ignore[attr-defined]
    with envyard_via_hub(hub, frank.token) as c:
        r = c.post("/api/v1/tokens", json={"name": "nb", "roles": {"frank": "developer"}})
        assert r.status_code == 201, r.text
        made = r.json()
        r = c.post("/api/v1/tokens", json={"name": "x", "roles": {"shared": "developer"}})
        assert r.status_code == 403 and "shared=developer: you have viewer" in r.text
        with api(hub, made["token"]) as t:
            assert t.get("/api/v1/whoami").json() == {
                "name": "token 'nb' of hub user 'frank'", "roles": {"frank": "developer"}}
            r = t.post("/api/v1/tokens", json={"name": "ci", "roles": {"frank": "viewer"}})
            assert r.status_code == 201, r.text
            second = r.json()
            assert [x["id"] for x in t.get("/api/v1/tokens").json()["tokens"]] == \
                [made["id"], second["id"]]
        assert [x["id"] for x in c.get("/api/v1/tokens").json()["tokens"]] == \
            [made["id"], second["id"]]
    gina = HubUser(hub.hub_url, "gina")  # type: ignore[attr-defined]
    with envyard_via_hub(hub, gina.token) as g:
        assert g.get("/api/v1/tokens").json() == {"tokens": []}
        assert g.delete(f"/api/v1/tokens/{made['id']}").status_code == 404
    gina.close()
    # in the browser: a cookie-authenticated write needs the CSRF token, as every write
    browser = frank.browser
    assert browser.get("/services/envyard/login").status_code == 200
    url = "/services/envyard/api/v1/tokens"
    body = {"name": "browser", "roles": {"frank": "viewer"}}
    forged = browser.post(url, json=body)
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
    forged = browser.delete(f"{url}/{made['id']}")
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
    csrf = {"X-CSRF-Token": browser.cookies.get("envyard-csrf", path="/services/envyard/")}
    assert browser.post(url, json=body, headers=csrf).status_code == 201
    assert len(browser.get(url).json()["tokens"]) == 3
    revoked = browser.delete(f"{url}/{made['id']}", headers=csrf)
    assert revoked.json() == {"revoked": [made["id"]]}, revoked.text
    with api(hub, made["token"]) as t:
        assert t.get("/api/v1/whoami").status_code == 401
    frank.close()


def test_sigterm_stops_the_hub_and_its_user_servers_and_exits_0(
        channel: Path, tmp_path: Path) -> None:
    """Before: uvicorn re-raised SIGTERM after its own shutdown, so `serve --hub` exited
    143 without stopping the hub, which the parent-death signal then cut short
    ("Failed to stop user", "Task was destroyed but it is pending!")."""
    import signal

    import psutil

    port = free_port()
    svc = Service(tmp_path / "volume", channel, extra_env={"ENVYARD_HUB__PORT": str(port)},
                  args=["--hub"])
    svc.root.mkdir()
    svc.start()
    hub_url = f"http://127.0.0.1:{port}"
    wait_for_hub(hub_url)
    user = HubUser(hub_url, "frank")
    user.start_server()
    user.close()
    assert svc.proc is not None
    tree = psutil.Process(svc.proc.pid).children(recursive=True)
    assert any("singleuser" in " ".join(p.cmdline()) for p in tree)  # frank's server
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(60) == 0
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    hub_log = (svc.root / "hub" / "jupyterhub.log").read_text()
    assert "Task was destroyed but it is pending" not in hub_log
    assert "Failed to stop user" not in hub_log
