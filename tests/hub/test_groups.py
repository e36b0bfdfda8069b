"""Hub groups and shares, end to end: a real JupyterHub whose group ``geo`` gives its
members developer on namespace ``geo``; a member builds there and runs its kernel, a
non-member cannot, and taking her out of the group through the hub's API takes the role
away at her next request (and the kernels at her server's next start). Each user is
admin of their own namespace here, so alice can share hers with bob."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub.conftest import wait_for_hub
from tests.hub.hubclient import HubUser
from tests.hub.test_hub_e2e import CODE, NB, envyard_via_hub, submit
from tests.servers import Service, free_port
from tests.service.conftest import api
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def team_hub(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    svc = Service(tmp_path_factory.mktemp("team-hub") / "volume", channel, extra_env={
        "ENVYARD_HUB__PORT": str(port),
        "ENVYARD_HUB__GRANTS": json.dumps({"{user}": "admin", "{group}": "developer"}),
        "ENVYARD_HUB__GROUP_GRANTS": json.dumps({"admins": {"*": "admin"}}),
        "ENVYARD_HUB__GROUPS": json.dumps({"geo": ["alice"], "admins": ["root"]}),
        "ENVYARD_HUB__ADMIN_USERS": json.dumps(["root"]),
        "ENVYARD_HUB__IDENTITY_SECONDS": "0"}, args=["--hub"])
    svc.root.mkdir()
    svc.start()
    svc.hub_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    wait_for_hub(svc.hub_url)  # type: ignore[attr-defined]
    yield svc
    svc.stop()


def test_a_groups_members_build_and_run_in_its_namespace(team_hub: Service) -> None:
    url = team_hub.hub_url  # type: ignore[attr-defined]
    alice, carol, root = HubUser(url, "alice"), HubUser(url, "carol"), HubUser(url, "root")
    try:
        with envyard_via_hub(team_hub, alice.token) as c:
            assert c.get("/api/v1/whoami").json()["roles"] == {
                "alice": "admin", "geo": "developer"}
            v = submit(c, "geo/nb", NB)
            assert v["state"] == "ready", v.get("error")
            members = c.get("/api/v1/namespaces/geo/members").json()
            assert {"who": "hub group 'geo'", "role": "developer", "via": "hub grant",
                    "expires_at": None} in members["members"]
        alice.start_server()
        assert "geo-nb" in alice.kernelspecs()
        assert alice.run("geo-nb", CODE).strip() == "2025.12.0"

        with envyard_via_hub(team_hub, carol.token) as c:  # not in the group
            assert "geo" not in c.get("/api/v1/whoami").json()["roles"]
            refused = c.post("/api/v1/environments/geo/other/versions", content=NB)
            assert refused.status_code == 403
            assert c.get("/api/v1/environments/geo/nb").status_code == 403
        carol.start_server()
        assert "geo-nb" not in carol.kernelspecs()

        with envyard_via_hub(team_hub, root.token) as c:  # group 'admins': admin everywhere
            assert c.get("/api/v1/whoami").json()["roles"]["*"] == "admin"
        # a hub admin takes alice out of geo; nothing is restarted
        resp = root.api.request("DELETE", "/hub/api/groups/geo/users",
                                json={"users": ["alice"]})
        assert resp.status_code == 200, resp.text
        with envyard_via_hub(team_hub, alice.token) as c:
            assert c.get("/api/v1/whoami").json()["roles"] == {"alice": "admin"}
            assert c.post("/api/v1/environments/geo/nb/versions",
                          content=NB).status_code == 403
            assert c.get("/api/v1/environments/geo/nb").status_code == 403
        # her running server keeps its kernel list until it starts again
        assert alice.api.delete("/hub/api/users/alice/server").status_code in (202, 204)
        _wait_stopped(alice)
        alice.start_server()
        assert "geo-nb" not in alice.kernelspecs()
    finally:
        for user in (alice, carol, root):
            user.close()


def _wait_stopped(user: HubUser) -> None:
    from tests.waiting import wait_until

    def stopped() -> bool:
        model = user.api.get(f"/hub/api/users/{user.name}").json()
        return not (model.get("servers") or {}).get("")

    wait_until(stopped, timeout=60, what=f"{user.name}'s server to stop", every=0.2)


def test_group_changes_apply_without_restarting_envyard(team_hub: Service) -> None:
    """A group created after start grants its namespace at the member's next request."""
    url = team_hub.hub_url  # type: ignore[attr-defined]
    root, dana = HubUser(url, "root"), HubUser(url, "dana")
    try:
        with envyard_via_hub(team_hub, dana.token) as c:
            assert "bio" not in c.get("/api/v1/whoami").json()["roles"]
            assert root.api.post("/hub/api/groups/bio").status_code == 201
            assert root.api.post("/hub/api/groups/bio/users",
                                 json={"users": ["dana"]}).status_code == 200
            assert c.get("/api/v1/whoami").json()["roles"]["bio"] == "developer"
    finally:
        root.close()
        dana.close()



def test_an_admin_shares_her_namespace_with_a_user(team_hub: Service) -> None:
    url = team_hub.hub_url  # type: ignore[attr-defined]
    alice, bob = HubUser(url, "alice"), HubUser(url, "bob")
    try:
        with envyard_via_hub(team_hub, alice.token) as a, \
                envyard_via_hub(team_hub, bob.token) as b:
            assert submit(a, "alice/nb", NB)["state"] == "ready"
            assert b.get("/api/v1/environments/alice/nb").status_code == 403
            # bob is no admin of alice: he cannot share it with himself
            assert b.put("/api/v1/namespaces/alice/members",
                         json={"user": "bob", "role": "admin"}).status_code == 403
            for bad in ({"user": "bob"}, {"user": "bob", "group": "geo", "role": "viewer"},
                        {"user": "bob\n", "role": "viewer"},
                        {"user": "../x", "role": "viewer"}):
                assert a.put("/api/v1/namespaces/alice/members",
                             json=bad).status_code == 422, bad
            r = a.put("/api/v1/namespaces/alice/members", json={"user": "bob",
                                                                 "role": "viewer"})
            assert r.status_code == 200, r.text
            assert {"who": "hub user 'bob'", "role": "viewer", "via": "shared",
                    "expires_at": None} in r.json()["members"]
            assert b.get("/api/v1/whoami").json()["roles"]["alice"] == "viewer"
            assert b.get("/api/v1/environments/alice/nb").status_code == 200
            made = b.post("/api/v1/tokens", json={"name": "laptop",
                                                  "roles": {"alice": "viewer"}})
            assert made.status_code == 201, made.text
            laptop = api(team_hub, made.json()["token"])
            assert laptop.get("/api/v1/environments/alice/nb").status_code == 200
            refused = b.post("/api/v1/environments/alice/nb/versions", content=NB)
            assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
            bob.start_server()  # his server lists what envyard says he reads
            assert {"bob-nb", "alice-nb"} & set(bob.kernelspecs()) == {"alice-nb"}
            assert bob.run("alice-nb", CODE).strip() == "2025.12.0"

            r = a.delete("/api/v1/namespaces/alice/members", params={"user": "bob"})
            assert r.status_code == 200, r.text
            assert b.get("/api/v1/environments/alice/nb").status_code == 403
            # the token he made meanwhile lost the role too (it kept it for 90 days)
            assert laptop.get("/api/v1/environments/alice/nb").status_code == 403
            laptop.close()
            assert a.delete("/api/v1/namespaces/alice/members",
                            params={"user": "bob"}).status_code == 404
            root = HubUser(url, "root")  # a hub admin: admin on every namespace
            with envyard_via_hub(team_hub, root.token) as r:
                # ... and on 'alice', which her own grant names (it was viewer there)
                assert r.get("/api/v1/whoami").json()["roles"]["*"] == "admin"
                assert r.put("/api/v1/namespaces/alice/members", json={
                    "group": "geo", "role": "viewer"}).status_code == 200
                assert r.put("/api/v1/namespaces/nowhere/members", json={
                    "user": "bob", "role": "viewer"}).status_code == 404
            root.close()
            events = a.get("/api/v1/audit", params={"namespace": "alice"}).json()
            assert {"share", "unshare"} <= {e["action"] for e in events["events"]}
    finally:
        alice.close()
        bob.close()


def _stop_server(user: HubUser) -> None:
    resp = user.api.delete(f"/hub/api/users/{user.name}/server")
    assert resp.status_code in (202, 204, 400), resp.text

    def stopped() -> bool:
        model = user.api.get(f"/hub/api/users/{user.name}").json()
        return not (model.get("servers") or {}).get("")

    wait_until(stopped, timeout=60, what=f"{user.name}'s server to stop", every=0.2)


SERVER = ("import os, sys\n"  # the kernel's python, and the server's PATH (its parent)
          "env = open(f'/proc/{os.getppid()}/environ', 'rb').read().split(b'\\0')\n"
          "path = next(e for e in env if e.startswith(b'PATH='))[5:].decode()\n"
          "print(os.path.realpath(sys.prefix)); print(os.path.realpath(path.split(':')[0]))")


def test_alice_chooses_her_environment_at_spawn(team_hub: Service) -> None:
    """The spawn page lists what envyard says she may start in; her choice becomes the
    server's default kernel and leads its PATH; a choice she may not read fails the
    spawn; starting without one undoes it."""
    url = team_hub.hub_url  # type: ignore[attr-defined]
    alice, erin = HubUser(url, "alice"), HubUser(url, "erin")
    try:
        with envyard_via_hub(team_hub, alice.token) as a, \
                envyard_via_hub(team_hub, erin.token) as e:
            assert submit(a, "alice/geo", NB)["state"] == "ready"
            assert submit(e, "erin/secret", NB)["state"] == "ready"
            prefix = a.get("/api/v1/spawn/environments").json()["environments"]
        _stop_server(alice)
        page = alice.browser.get("/hub/spawn")
        assert page.status_code == 200
        assert 'value="alice/geo"' in page.text and "erin/secret" not in page.text
        resp = alice.browser.post("/hub/spawn", data={
            "environment": "alice/geo", "_xsrf": alice.browser.cookies.get("_xsrf", "")})
        assert resp.status_code == 200, resp.text
        alice.start_server()  # (already starting: waits for it)
        specs = alice.api.get("/user/alice/api/kernelspecs").json()
        assert specs["default"] == "alice-geo"
        chosen = next(r for r in prefix if r["environment"] == "alice/geo")
        sys_prefix, first = alice.run(specs["default"], SERVER).split()
        assert chosen["prefix"].endswith("envs/alice/geo/current")  # follows a rollback
        assert first == f"{sys_prefix}/bin" and "/prefixes/" in sys_prefix

        _stop_server(alice)  # erin's environment: not hers to read
        refused = alice.api.post("/hub/api/users/alice/server",
                                 json={"environment": "erin/secret"})
        assert refused.status_code >= 400
        assert "not an environment you may start a server in" in refused.text
        # the hub reuses the last options when a start names none: name "none" out loud
        assert alice.api.post("/hub/api/users/alice/server", json={
            "environment": ""}).status_code in (201, 202)
        alice.start_server()
        specs = alice.api.get("/user/alice/api/kernelspecs").json()
        assert specs["default"] != "alice-geo" and "alice-geo" in specs["kernelspecs"]
        sys_prefix, first = alice.run("alice-geo", SERVER).split()
        assert first != f"{sys_prefix}/bin"
    finally:
        alice.close()
        erin.close()
