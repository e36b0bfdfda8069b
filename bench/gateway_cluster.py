"""dask-gateway figures: a cluster on an envyard environment, and how soon a build is
offered.

A real `envyard serve` and `dask-gateway-server` (local process backend) on 127.0.0.1.
Cluster start: ``new_cluster`` until one worker is ready, alternating an envyard
environment (``environment="team/geo"``: ``<prefix>/bin/dask``) with the gateway's
default environment (this Python's ``dask``), 5 of each; the baseline is the default in
the same run. Goal: <= 1.2x. Offered: a build's ``finished_at`` to its name appearing in
the gateway's options for a user (polled every 20 ms), for 3 new environments. Goal: < 1 s.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import channel, exit_now
from dask_gateway import BasicAuth, Gateway

from tests.gateway.server import PASSWORD, DaskGateway
from tests.servers import Service

SPEC = "dependencies: [python=3.11, dask=2026.1.2, distributed, dask-gateway, numpy{}]\n"
PINS = {"python": "3.11", "dask": "2026.1.2", "distributed": "2026.1.2", "msgpack": "1.2.4",
        "cloudpickle": "3.1.3", "tornado": "6.6.1", "toolz": "1.2.0"}
ROUNDS = 5


def ready(c: httpx.Client, ref: str, number: int) -> dict:
    while (v := c.get(f"/api/v1/environments/{ref}/versions/{number}").json())[
            "state"] not in ("ready", "failed"):
        time.sleep(0.01)
    if v["state"] != "ready":
        raise SystemExit(f"{ref} {number} failed: {v['error']}")
    return v


#: Closed clients and gateways, kept until the process ends: dask-gateway's ``__del__``
#: calls back into its event loop, and a collection inside that loop's thread deadlocks.
KEPT: list[Any] = []


def cluster_start(address: str, environment: str) -> float:
    gateway = Gateway(address, auth=BasicAuth("alice", PASSWORD))
    begin = time.perf_counter()
    cluster = gateway.new_cluster(environment=environment)
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=120)
    took = time.perf_counter() - begin
    client.close()
    cluster.shutdown()
    gateway.close()
    KEPT.extend((client, cluster, gateway))
    return took


def offered_after_build(c: httpx.Client, gw: DaskGateway, ref: str, extra: str) -> float:
    number = c.post(f"/api/v1/environments/{ref}/versions",
                    content=SPEC.format(extra)).json()["version"]
    while ref not in gw.options("alice"):
        time.sleep(0.02)
    seen = time.time()
    finished = dt.datetime.fromisoformat(ready(c, ref, number)["finished_at"])
    if finished.tzinfo is None:
        finished = finished.replace(tzinfo=dt.UTC)
    return seen - finished.timestamp()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-gateway-") as tmp:
        work = Path(tmp)
        svc = Service(work / "volume", channel(), extra_env={
            "ENVYARD_HUB__GRANTS": '{"{user}": "developer", "team": "viewer"}'})
        svc.root.mkdir()
        svc.start()
        gw = None
        try:
            token = svc.token("*=admin", name="gateway")
            c = httpx.Client(base_url=svc.url, timeout=120,
                             headers={"Authorization": f"Bearer {token}"})
            c.put("/api/v1/dask/pins", json={"versions": PINS}).raise_for_status()
            ready(c, "team/geo", c.post("/api/v1/environments/team/geo/versions",
                                        content=SPEC.format("")).json()["version"])
            gw = DaskGateway(work / "gateway", svc.url, token).start()
            cluster_start(gw.address, "default")  # warm: first imports, page cache
            cluster_start(gw.address, "team/geo")
            ours, base = [], []
            for _ in range(ROUNDS):
                ours.append(cluster_start(gw.address, "team/geo"))
                base.append(cluster_start(gw.address, "default"))
            latencies = [offered_after_build(c, gw, f"team/new{i}", ", toolz")
                         for i in range(3)]
        finally:
            if gw is not None:
                gw.stop()
            svc.stop()
    o, b = statistics.median(ours), statistics.median(base)
    print(f"cluster start (new_cluster + 1 worker): envyard environment median {o:.2f} s "
          f"(min {min(ours):.2f}), gateway default median {b:.2f} s (min {min(base):.2f}), "
          f"ratio {o / b:.2f}x  (goal <= 1.2x)")
    print(f"build ready -> offered in the gateway's options: median "
          f"{statistics.median(latencies):.3f} s, max {max(latencies):.3f} s  (goal < 1 s)")


if __name__ == "__main__":
    main()
    exit_now()
