"""API latency with 1,000 environments x 10 versions in the database, SQLite and PostgreSQL.

p99 of listing a namespace's environments, listing an environment's versions and reading
one version, against a real `envyard serve`; the baseline in the same run is /healthz,
which touches no database. Goal: every p99 < 50 ms.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import httpx
from common import channel, exit_now, on_each_backend

from envyard.service.auth import create_token
from envyard.service.db import Database, migrate
from envyard.service.models import Environment, Namespace, Role, Version
from tests.servers import Service

ENVS, VERSIONS, NAMESPACES, REQUESTS = 1000, 10, 10, 300


def populate(url: str) -> str:
    db = Database(url)
    migrate(db.engine)
    packages = [{"name": f"pkg{i}", "version": "1.0", "manager": "conda"} for i in range(60)]
    with db.session(write=True) as s:
        for n in range(NAMESPACES):
            ns = Namespace(name=f"ns{n}")
            s.add(ns)
            s.flush()
            for e in range(ENVS // NAMESPACES):
                env = Environment(namespace_id=ns.id, name=f"env{e}", version_counter=VERSIONS,
                                  current_version=VERSIONS)
                s.add(env)
                s.flush()
                s.add_all(Version(environment_id=env.id, number=v, kind="spec", state="ready",
                                  spec_text="dependencies: [python]\n", spec_sha256="0" * 64,
                                  packages=packages, timings={"solve": 0.1}, prefix_bytes=1,
                                  pack_bytes=1) for v in range(1, VERSIONS + 1))
        token = create_token(s, name="bench", roles={"*": Role.viewer})
    db.engine.dispose()
    return token


def p99(client: httpx.Client, paths: list[str]) -> float:
    times = []
    for path in paths:
        start = time.perf_counter()
        client.get(path).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.quantiles(times, n=100)[98] * 1000


def measure(backend: str, url: str, work: Path) -> None:
    token = populate(url or f"sqlite:///{work / 'volume' / 'envyard.db'}")
    svc = Service(work / "volume", channel(), url).start()
    rng = random.Random(1)
    try:
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as c:
            def pick() -> tuple[int, int]:
                return rng.randrange(NAMESPACES), rng.randrange(ENVS // NAMESPACES)

            p99(c, ["/healthz"] * 50)  # warm up
            base = p99(c, ["/healthz"] * REQUESTS)
            ns_list = p99(c, [f"/api/v1/namespaces/ns{pick()[0]}" for _ in range(REQUESTS)])
            v_list = p99(c, ["/api/v1/environments/ns{}/env{}/versions".format(*pick())
                             for _ in range(REQUESTS)])
            v_read = p99(c, ["/api/v1/environments/ns{}/env{}/versions/{}".format(
                *pick(), rng.randint(1, VERSIONS)) for _ in range(REQUESTS)])
        for what, ms in (("list a namespace (100 envs)", ns_list),
                         ("list an environment's versions", v_list),
                         ("read one version", v_read)):
            print(f"{backend}: {what}: p99 {ms:.1f} ms (goal < 50 ms); /healthz p99 "
                  f"{base:.1f} ms; ratio {ms / base:.1f}x")
    finally:
        svc.stop()


def main() -> None:
    on_each_backend(measure)

if __name__ == "__main__":
    main()
    exit_now()
