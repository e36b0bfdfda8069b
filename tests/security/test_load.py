"""A crowd: 250 concurrent readers while 3 builds run, on SQLite and on PostgreSQL. No
answer is a 500, none takes longer than 10 s (the client gives up there: a hang), and
every build ends within its limits. The latencies are reported by bench/load.py."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.servers import Service
from tests.service.conftest import api, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BUILDS = ["dependencies: [python=3.11, dask, distributed, numpy]\n",
          "dependencies: [python=3.11, pandas, pyyaml]\n",
          "dependencies: [python=3.11, ipykernel, toolz]\n"]


@pytest.fixture(params=["sqlite", "postgresql"])
def crowd_service(request: pytest.FixtureRequest, channel: Path,
                  tmp_path: Path) -> Iterator[Service]:
    url = request.getfixturevalue("postgres").new_database() \
        if request.param == "postgresql" else ""
    svc = Service(tmp_path / "volume", channel, url)
    svc.root.mkdir()
    svc.start()
    yield svc
    svc.stop()


def test_250_concurrent_readers_while_3_builds_run(crowd_service: Service) -> None:
    svc = crowd_service
    token = svc.token("crowd=developer")
    with api(svc, token) as c:
        first = c.post("/api/v1/environments/crowd/base/versions",
                       content="dependencies: [python=3.11, toolz]\n").json()["version"]
        wait_ready(c, "crowd/base", first)
        numbers = [c.post(f"/api/v1/environments/crowd/b{i}/versions", content=spec
                          ).json()["version"] for i, spec in enumerate(BUILDS)]
    paths = ["/api/v1/namespaces", "/api/v1/namespaces/crowd",
             "/api/v1/environments/crowd/base", "/api/v1/environments/crowd/base/versions/1",
             "/api/v1/environments/crowd/base/versions/1/log", "/api/v1/whoami"]

    # a connection per request: a kept-alive one the server closes as idle just as the
    # client reuses it is a reset that is no fault of the server's
    crowd = httpx.Client(base_url=svc.url, timeout=10,  # longer is a hang: a failure
                         headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                         limits=httpx.Limits(max_connections=250))

    def reader(i: int) -> list[int]:
        return [crowd.get(paths[(i + k) % len(paths)]).status_code for k in range(4)]

    with crowd, ThreadPoolExecutor(250) as pool:
        statuses = [s for batch in pool.map(reader, range(250)) for s in batch]
    assert len(statuses) == 1000
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    with api(svc, token) as c:
        states = [wait_ready(c, f"crowd/b{i}", n)["state"] for i, n in enumerate(numbers)]
    assert states == ["ready"] * 3


def test_an_idle_connection_is_kept_as_long_as_a_proxys(svc: Service) -> None:
    """A proxy (the hub's, an ingress) reuses a connection idle for seconds; the service
    must not have closed it (before: closed after 5 s, and the proxy's request was reset)."""
    host, port = svc.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for pause in (6, 0):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b'{"status":"ok"}'
            time.sleep(pause)
    finally:
        conn.close()
