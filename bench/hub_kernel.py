"""Hub figures: start time of `envyard serve --hub` and how fast a user's server lists a
kernel after ``current`` moves.

Start: `envyard serve` alone until /healthz answers, against `envyard serve --hub` until the
hub answers and envyard answers through the hub's proxy. Kernel latency: a running user
server is polled every 20 ms; for a build, from the version's ``finished_at`` to the new
display name being listed; for rollbacks (10, alternating), from sending the request.
Baseline in the same run: one plain kernelspec listing round trip. Goal: < 2 s.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import channel, exit_now

from tests.hub.hubclient import HubUser
from tests.servers import Service, free_port

NB = "dependencies: [python=3.11, ipykernel, dask=2025.12.0, distributed]\n"
NB2 = "dependencies: [python=3.11, ipykernel, dask=2026.1.2, distributed]\n"


def wait_url(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer in {timeout} s")


def started(work: Path, hub: bool) -> tuple[Service, str, float]:
    port = free_port()
    svc = Service(work / ("hub" if hub else "plain") / "volume", channel(),
                  extra_env={"ENVYARD_HUB__PORT": str(port)}, args=["--hub"] if hub else [])
    svc.root.mkdir(parents=True)
    begin = time.perf_counter()
    svc.start()
    hub_url = f"http://127.0.0.1:{port}"
    if hub:
        wait_url(f"{hub_url}/services/envyard/healthz")
    return svc, hub_url, time.perf_counter() - begin


def listed(user: HubUser, display: str) -> float:
    while True:
        spec = user.kernelspecs().get("alice-geo")
        if spec and spec["spec"]["display_name"] == display:
            return time.time()
        time.sleep(0.02)


def ready(c: httpx.Client, number: int) -> dict:
    while (v := c.get(f"/api/v1/environments/alice/geo/versions/{number}").json())[
            "state"] not in ("ready", "failed"):
        time.sleep(0.01)
    return v


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-hub-") as tmp:
        work = Path(tmp)
        plain, _, plain_start = started(work, hub=False)
        plain.stop()
        svc, hub_url, hub_start = started(work, hub=True)
        try:
            alice = HubUser(hub_url, "alice")
            c = httpx.Client(base_url=f"{hub_url}/services/envyard", timeout=120,
                             headers={"Authorization": f"token {alice.token}"})
            c.post("/api/v1/environments/alice/geo/versions", content=NB).raise_for_status()
            ready(c, 1)
            begin = time.perf_counter()
            alice.start_server()
            server_start = time.perf_counter() - begin
            listed(alice, "alice/geo (v1)")
            c.post("/api/v1/environments/alice/geo/versions", content=NB2).raise_for_status()
            seen = listed(alice, "alice/geo (v2)")
            finished = dt.datetime.fromisoformat(ready(c, 2)["finished_at"])
            if finished.tzinfo is None:
                finished = finished.replace(tzinfo=dt.UTC)
            build_latency = seen - finished.timestamp()
            rollbacks = []
            for i in range(10):
                target = 1 if i % 2 == 0 else 2
                sent = time.time()
                c.post("/api/v1/environments/alice/geo/rollback",
                       json={"version": target}).raise_for_status()
                rollbacks.append(listed(alice, f"alice/geo (v{target})") - sent)
            trips = []
            for _ in range(20):
                t = time.perf_counter()
                alice.kernelspecs()
                trips.append(time.perf_counter() - t)
            trip = statistics.median(trips)
        finally:
            svc.stop()
    print(f"start: serve --hub {hub_start:.2f} s, serve alone {plain_start:.2f} s, "
          f"ratio {hub_start / plain_start:.2f}x; a user server started in {server_start:.2f} s")
    print(f"kernel listed after a build became current: {build_latency:.3f} s")
    print(f"kernel listed after a rollback: median {statistics.median(rollbacks):.3f} s, "
          f"max {max(rollbacks):.3f} s; one kernelspec listing {trip:.3f} s, ratio "
          f"{statistics.median(rollbacks) / trip:.1f}x  (goal < 2 s)")


if __name__ == "__main__":
    main()
    exit_now()
