"""Claiming and completing builds with two service processes against one, on PostgreSQL.

Each configuration gets a fresh database and volume, builds the tiny environment once (so
every later build reuses its solve, prefix and pack: near no-op builds that still go
through claim, every stage's state change, publication and the log), then takes N
submissions spread over its replicas and waits until all are ready. Prints builds per
second for 1 and 2 replicas and their ratio (the 2-core machine bounds it).
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import channel, exit_now

from tests.servers import Postgres, Service

SPEC = "dependencies: [python=3.11, toolz]\n"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


def run(pg: Postgres, replicas: int, work: Path) -> float:
    url = pg.new_database()
    root = work / f"r{replicas}" / "volume"
    root.mkdir(parents=True)
    services = [Service(root, channel(), url).start() for _ in range(replicas)]
    try:
        token = services[0].token("bench=developer")
        headers = {"Authorization": f"Bearer {token}"}
        clients = [httpx.Client(base_url=s.url, headers=headers, timeout=120) for s in services]
        path = "/api/v1/environments/bench/env/versions"

        def done(number: int) -> None:
            while clients[0].get(f"{path}/{number}").json()["state"] not in (
                    "ready", "failed"):
                time.sleep(0.05)

        clients[0].post(path, content=SPEC).raise_for_status()
        done(1)
        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            numbers = list(pool.map(lambda i: clients[i % replicas].post(
                path, content=SPEC).json()["version"], range(N)))
        for number in sorted(numbers):
            done(number)
        seconds = time.perf_counter() - start
        for c in clients:
            c.close()
        return N / seconds
    finally:
        for s in services:
            s.stop()


def main() -> None:
    pg = Postgres().start()
    try:
        with tempfile.TemporaryDirectory(prefix="envyard-bench-replicas-") as tmp:
            one = run(pg, 1, Path(tmp))
            two = run(pg, 2, Path(tmp))
    finally:
        pg.stop()
    print(f"{N} near no-op builds on PostgreSQL: 2 replicas {two:.1f} builds/s, 1 replica "
          f"{one:.1f} builds/s, ratio {two / one:.2f}x")


if __name__ == "__main__":
    main()
    exit_now()
