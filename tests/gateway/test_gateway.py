"""Dask clusters on envyard environments through a real dask-gateway: a real ``envyard
serve`` and ``dask-gateway-server`` (local process backend) on 127.0.0.1, environments
built from the demo channel. Every hub user is viewer on ``team`` (a fixed grant), the
members of hub group ``geo`` developer on ``geo``; nobody but admins reads ``secret``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.server import DaskGateway, client_script, run_in
from tests.servers import Service
from tests.service.conftest import api, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

GW = "dask-gateway, numpy"
SPECS = {
    "team/geo": f"dependencies: [python=3.11, dask=2025.12.0, distributed, {GW}]\n",
    "team/old": f"dependencies: [python=3.11, dask=2025.12.0, distributed, {GW}]\n",
    "team/nogw": "dependencies: [python=3.11, dask=2026.1.2, distributed]\n",
    "team/plain": "dependencies: [python=3.11, toolz]\n",
    "geo/maps": f"dependencies: [python=3.11, dask=2026.1.2, distributed, {GW}]\n",
    "secret/hidden": f"dependencies: [python=3.11, dask=2026.1.2, distributed, {GW}]\n",
}
GEO_NEW = f"dependencies: [python=3.11, dask=2026.1.2, distributed, {GW}]\n"
PINS = {"python": "3.11", "dask": "2026.1.2", "distributed": "2026.1.2", "msgpack": "1.2.4",
        "cloudpickle": "3.1.3", "tornado": "6.6.1", "toolz": "1.2.0"}
OLD_PINS = {**PINS, "dask": "2025.12.0", "distributed": "2025.12.0"}


@pytest.fixture(scope="module")
def envyard(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("gateway") / "volume", channel, extra_env={
        "ENVYARD_HUB__GRANTS": json.dumps({"{user}": "developer", "{group}": "developer",
                                           "team": "viewer"})})
    svc.root.mkdir()
    svc.start()
    admin = svc.token("*=admin", name="gateway")
    with api(svc, admin) as c:
        assert c.put("/api/v1/dask/pins", json={"versions": PINS}).status_code == 200
        for ref, spec in SPECS.items():
            n = c.post(f"/api/v1/environments/{ref}/versions", content=spec).json()["version"]
            assert wait_ready(c, ref, n, timeout=300)["state"] == "ready", ref
        n = c.post("/api/v1/environments/team/geo/versions", content=GEO_NEW).json()["version"]
        assert wait_ready(c, "team/geo", n, timeout=300)["state"] == "ready"
    svc.admin_token = admin  # type: ignore[attr-defined]
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def gateway(envyard: Service, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[DaskGateway]:
    gw = DaskGateway(tmp_path_factory.mktemp("dask-gateway"), envyard.url,
                     envyard.admin_token)  # type: ignore[attr-defined]
    gw.start()
    yield gw
    gw.stop()


def listing(c: httpx.Client, **params: Any) -> dict[str, dict[str, Any]]:
    resp = c.get("/api/v1/dask/environments", params=params)
    assert resp.status_code == 200, resp.text
    return {e["environment"]: e for e in resp.json()["environments"]}


def test_envyard_lists_what_a_user_may_run_a_cluster_on(envyard: Service) -> None:
    admin = envyard.admin_token  # type: ignore[attr-defined]
    with api(envyard, admin) as c:
        alice = listing(c, user="alice")
        assert set(alice) == {"team/geo", "team/old", "team/nogw"}  # no plain, geo, secret
        geo = alice["team/geo"]
        assert (geo["version"], geo["verdict"], geo["offered"]) == (2, "ok", True)
        assert geo["prefix"] == os.path.realpath(envyard.root / "envs/team/geo/2")
        assert geo["prefix"].startswith(str(envyard.root / "prefixes"))
        old = alice["team/old"]
        assert old["offered"] is False and old["verdict"] == "mismatch"
        assert "dask mismatch (environment 2025.12.0, cluster 2026.1.2)" in old["problem"]
        assert "dask-gateway" in alice["team/nogw"]["problem"]
        # her hub groups, passed along, grant what they grant her own requests
        assert "geo/maps" in listing(c, user="alice", group=["geo"])
        assert "secret/hidden" in listing(c, user="root", admin="true")
        for bad in ({"user": "../x"}, {"user": "a b"}, {"user": "alice", "group": "g\n"},
                    {"group": "geo"}, {"user": "x" * 300}):
            assert c.get("/api/v1/dask/environments", params=bad).status_code == 422, bad
    viewer = envyard.token("team=developer", name="someone")
    with api(envyard, viewer) as c:
        own = listing(c)  # for the caller itself: fine
        assert set(own) == {"team/geo", "team/old", "team/nogw"}
        assert not own["team/geo"]["prefix"].startswith("/")  # not a namespace admin
        refused = c.get("/api/v1/dask/environments", params={"user": "alice"})
        assert refused.status_code == 403 and "'*'" in refused.json()["detail"]


def test_a_cluster_runs_the_environment_and_follows_its_rollback(
        envyard: Service, gateway: DaskGateway) -> None:
    assert gateway.options("alice") == ["default", "team/geo"]
    geo_v2 = envyard.root / "envs/team/geo/2"
    # (a) from the environment's own python, as its notebook kernel would
    a = run_in(geo_v2, client_script(gateway.address, "alice", """
import dask, dask.array as da
from dask.distributed import Client
cluster = gateway.new_cluster(environment="team/geo", shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
total = int(da.ones((1000, 1000), chunks=(100, 100)).sum().compute())
client.get_versions(check=True)
workers = client.run(lambda: (__import__("dask").__version__, __import__("sys").prefix))
print(json.dumps({"total": total, "workers": list(workers.values()), "name": cluster.name,
                  "client": dask.__version__}))
"""))
    assert a["total"] == 1_000_000 and a["client"] == "2026.1.2"
    assert a["workers"] == [["2026.1.2", os.path.realpath(geo_v2)]]

    # (b) an environment failing the pin check: refused with envyard's verdict; one she
    # may not read, and one that does not exist, alike
    b = run_in(geo_v2, client_script(gateway.address, "alice", """
out = {}
for env in ("team/old", "secret/hidden", "secret/nothing"):
    try:
        gateway.new_cluster(environment=env)
        out[env] = "started"
    except ValueError as exc:
        out[env] = str(exc)
print(json.dumps(out))
"""))
    assert "fails envyard's Dask pin check" in str(b["team/old"])
    assert "dask mismatch (environment 2025.12.0, cluster 2026.1.2)" in str(b["team/old"])
    hidden, nothing = str(b["secret/hidden"]), str(b["secret/nothing"])
    assert hidden.replace("hidden", "X") == nothing.replace("nothing", "X")
    assert "not one you may run a cluster on" in hidden

    # (c) rollback to version 1 (dask 2025.12.0), the cluster's pins moved back with it:
    # the next cluster runs version 1, the running one keeps version 2
    with api(envyard, envyard.admin_token) as c:  # type: ignore[attr-defined]
        assert c.post("/api/v1/environments/team/geo/rollback",
                      json={"version": 1}).status_code == 200
        assert c.put("/api/v1/dask/pins", json={"versions": OLD_PINS}).status_code == 200
    geo_v1 = envyard.root / "envs/team/geo/1"
    c1 = run_in(envyard.root / "envs/team/geo/current", client_script(
        gateway.address, "alice", """
cluster = gateway.new_cluster(environment="team/geo")
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
client.get_versions(check=True)
workers = client.run(lambda: (__import__("dask").__version__, __import__("sys").prefix))
print(json.dumps({"workers": list(workers.values())}))
cluster.shutdown()
"""))
    assert c1["workers"] == [["2025.12.0", os.path.realpath(geo_v1)]]
    running = run_in(geo_v2, client_script(gateway.address, "alice", f"""
cluster = gateway.connect({a['name']!r})
client = cluster.get_client()
workers = client.run(lambda: __import__("dask").__version__)
print(json.dumps({{"workers": list(workers.values())}}))
cluster.shutdown()
"""))
    assert running["workers"] == ["2026.1.2"]
