"""Spawn-time choice: how soon a ready environment is selectable on the hub's spawn page,
and what the page costs with many environments.

A real `envyard serve --hub`: alice builds N environments (one lock, so one prefix), then
one more while her spawn page is polled every 20 ms; the latency is from the version's
``finished_at`` to the page offering it. Then the spawn page's render time (it asks
envyard as alice through a fresh hub token) against the hub's own home page in the same
run. Goal: selectable < 1 s after ready.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import channel, exit_now

from tests.hub.hubclient import HubUser
from tests.servers import Service, free_port

NB = "dependencies: [python=3.11, ipykernel, dask=2025.12.0, distributed]\n"


def ready(c: httpx.Client, env: str, number: int) -> dict:
    while (v := c.get(f"/api/v1/environments/{env}/versions/{number}").json())[
            "state"] not in ("ready", "failed"):
        time.sleep(0.01)
    if v["state"] != "ready":
        raise SystemExit(f"{env} failed: {v['error']}")
    return v


def offered(alice: HubUser, ref: str) -> float:
    while f'value="{ref}"' not in alice.browser.get("/hub/spawn").text:
        time.sleep(0.02)
    return time.time()


def timed(get: object, n: int = 20) -> float:
    trips = []
    for _ in range(n):
        t = time.perf_counter()
        get()  # type: ignore[operator]
        trips.append(time.perf_counter() - t)
    return statistics.median(trips)


def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-spawn-") as tmp:
        port = free_port()
        svc = Service(Path(tmp) / "volume", channel(),
                      extra_env={"ENVYARD_HUB__PORT": str(port),
                                 "ENVYARD_HUB__GRANTS": '{"{user}": "admin"}'},
                      args=["--hub"])
        svc.root.mkdir(parents=True)
        svc.start()
        hub_url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if httpx.get(f"{hub_url}/hub/api/", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            alice = HubUser(hub_url, "alice")
            c = httpx.Client(base_url=f"{hub_url}/services/envyard", timeout=120,
                             headers={"Authorization": f"token {alice.token}"})
            for i in range(count):
                c.post(f"/api/v1/environments/alice/e{i:03d}/versions",
                       content=NB).raise_for_status()
            for i in range(count):
                ready(c, f"alice/e{i:03d}", 1)
            latencies = []
            for attempt in range(5):
                env = f"alice/new{attempt}"
                c.post(f"/api/v1/environments/{env}/versions", content=NB).raise_for_status()
                seen = offered(alice, env)
                finished = dt.datetime.fromisoformat(ready(c, env, 1)["finished_at"])
                if finished.tzinfo is None:
                    finished = finished.replace(tzinfo=dt.UTC)
                latencies.append(seen - finished.timestamp())
            page = timed(lambda: alice.browser.get("/hub/spawn").raise_for_status())
            home = timed(lambda: alice.browser.get("/hub/home").raise_for_status())
            listing = timed(lambda: c.get("/api/v1/spawn/environments").raise_for_status())
            alice.close()
            c.close()
        finally:
            svc.stop()
    print(f"selectable on the spawn page after ready: median {statistics.median(latencies):.3f}"
          f" s, max {max(latencies):.3f} s (5 builds; goal < 1 s)")
    print(f"spawn page with {count + 5} environments: {page * 1000:.0f} ms, the hub's home "
          f"page {home * 1000:.0f} ms, ratio {page / home:.1f}x; envyard's listing alone "
          f"{listing * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
    exit_now()
