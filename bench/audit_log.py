"""The audit log with 200,000 events over 100 namespaces, SQLite and PostgreSQL.

p99 of the pages an admin asks for (the newest events; one namespace; one environment;
one actor; one action in a namespace; events since a time; the next page by cursor; a
namespace admin's view), against a real `envyard serve`; the baseline in the same run is
/healthz, which touches no database. Goal: every p99 < 50 ms.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from pathlib import Path

import httpx
from common import channel, exit_now, on_each_backend
from sqlalchemy import insert

from envyard.service.auth import create_token
from envyard.service.db import Database, migrate
from envyard.service.models import AuditAction, AuditEvent, Role
from tests.servers import Service

EVENTS, NAMESPACES, ENVS, ACTORS, REQUESTS = 200_000, 100, 20, 50, 200
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def populate(url: str) -> tuple[str, str]:
    db = Database(url)
    migrate(db.engine)
    rng = random.Random(1)
    actions = list(AuditAction)
    rows = [{"at": START + dt.timedelta(seconds=30 * i),
             "actor": f"token 'u{rng.randrange(ACTORS)}'", "action": rng.choice(actions),
             "namespace": f"ns{rng.randrange(NAMESPACES)}",
             "environment": f"env{rng.randrange(ENVS)}", "version": rng.randint(1, 50),
             "detail": {"bytes": i}} for i in range(EVENTS)]
    with db.session(write=True) as s:
        for i in range(0, EVENTS, 10_000):
            s.execute(insert(AuditEvent), rows[i:i + 10_000])
        root = create_token(s, name="bench", roles={"*": Role.admin})
        few = create_token(s, name="few", roles={f"ns{n}": Role.admin for n in range(3)})
    db.engine.dispose()
    return root, few


def p99(client: httpx.Client, queries: list[dict[str, str]]) -> float:
    times = []
    for params in queries:
        start = time.perf_counter()
        client.get("/api/v1/audit", params=params).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.quantiles(times, n=100)[98] * 1000


def measure(backend: str, url: str, work: Path) -> None:
    root, few = populate(url or f"sqlite:///{work / 'volume' / 'envyard.db'}")
    svc = Service(work / "volume", channel(), url).start()
    rng = random.Random(2)
    try:
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {root}"},
                          timeout=30) as c:
            def ns() -> str:
                return f"ns{rng.randrange(NAMESPACES)}"

            def since() -> str:
                back = dt.timedelta(seconds=30 * rng.randint(10, 1000))
                return (START + dt.timedelta(seconds=30 * EVENTS) - back).isoformat()

            cursor = c.get("/api/v1/audit").json()["next"]
            healthz = []
            for _ in range(REQUESTS):
                start = time.perf_counter()
                c.get("/healthz")
                healthz.append(time.perf_counter() - start)
            base = statistics.quantiles(healthz, n=100)[98] * 1000
            cases = {
                "newest page": [{}] * REQUESTS,
                "one namespace": [{"namespace": ns()} for _ in range(REQUESTS)],
                "one environment": [{"namespace": ns(),
                                     "environment": f"env{rng.randrange(ENVS)}"}
                                    for _ in range(REQUESTS)],
                "one actor": [{"actor": f"token 'u{rng.randrange(ACTORS)}'"}
                              for _ in range(REQUESTS)],
                "an action in a namespace": [{"namespace": ns(), "action": "quota"}
                                             for _ in range(REQUESTS)],
                "since a time": [{"since": since()} for _ in range(REQUESTS)],
                "the next page": [{"cursor": cursor}] * REQUESTS,
            }
            results = {what: p99(c, queries) for what, queries in cases.items()}
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {few}"},
                          timeout=30) as c:
            results["a namespace admin (3 namespaces)"] = p99(c, [{}] * REQUESTS)
        for what, ms in results.items():
            print(f"{backend}: {what}: p99 {ms:.1f} ms (goal < 50 ms); /healthz p99 "
                  f"{base:.1f} ms")
    finally:
        svc.stop()


def main() -> None:
    on_each_backend(measure)

if __name__ == "__main__":
    main()
    exit_now()
