"""Find by package with 1,000 environments x 10 versions (60 packages each; dask in the
current version of every other environment), SQLite and PostgreSQL.

p50/p99 of `GET /api/v1/environments?package=dask` (the first page of 50 of 500 matches)
against a real `envyard serve`, for a token that reads every namespace and for one that
reads five; the baseline in the same run is the raw SQL of the same query on a bare
DB-API connection (no HTTP, no ORM). Goal: p99 < 50 ms.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from common import channel, exit_now, on_each_backend
from sqlalchemy import insert

from envyard.service.auth import create_token
from envyard.service.db import Database, migrate
from envyard.service.find import package_key
from envyard.service.models import Environment, Namespace, Role, Version, VersionPackage
from tests.servers import Service

ENVS, VERSIONS, NAMESPACES, REQUESTS = 1000, 10, 10, 300

RAW = """
SELECT n.name, e.name, e.description, e.current_version, cv.state, cv.dask_report,
       lv.number, lv.state, lv.created_at, lv.finished_at
FROM environments e JOIN namespaces n ON n.id = e.namespace_id
LEFT JOIN versions cv ON cv.environment_id = e.id AND cv.number = e.current_version
LEFT JOIN versions lv ON lv.environment_id = e.id AND lv.number = e.version_counter
WHERE e.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM version_packages p WHERE p.version_id = cv.id
              AND p.name = 'dask')
ORDER BY n.name, e.name LIMIT 51
"""


def populate(url: str) -> tuple[str, str]:
    db = Database(url)
    migrate(db.engine)
    common = [{"name": f"pkg{i}", "version": "1.0", "manager": "conda"} for i in range(59)]
    with db.session(write=True) as s:
        for n in range(NAMESPACES):
            ns = Namespace(name=f"ns{n}")
            s.add(ns)
            s.flush()
            for e in range(ENVS // NAMESPACES):
                env = Environment(namespace_id=ns.id, name=f"env{e}", version_counter=VERSIONS,
                                  current_version=VERSIONS, description=f"environment {e}")
                s.add(env)
                s.flush()
                extra = {"name": "dask" if e % 2 else "toolz", "version": "1", "manager": "conda"}
                packages = [*common, extra]
                versions = [Version(environment_id=env.id, number=v, kind="spec", state="ready",
                                    spec_text="dependencies: [python]\n", spec_sha256="0" * 64,
                                    packages=packages, timings={"solve": 0.1}, prefix_bytes=1,
                                    pack_bytes=1) for v in range(1, VERSIONS + 1)]
                s.add_all(versions)
                s.flush()
                s.execute(insert(VersionPackage), [
                    {"version_id": v.id, "name": package_key(p["name"], p["manager"])}
                    for v in versions for p in packages])
        every = create_token(s, name="bench", roles={"*": Role.viewer})
        five = create_token(s, name="five", roles={f"ns{n}": Role.viewer for n in range(5)})
    db.engine.dispose()
    return every, five


def timed(call: Callable[[], object], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100)[q - 1] * 1000


def raw_sql(url: str) -> list[float]:
    """The same query on a bare DB-API connection."""
    db = Database(url)
    try:
        conn = db.engine.raw_connection()
        try:
            cur = conn.cursor()

            def run() -> object:
                cur.execute(RAW)
                rows = cur.fetchall()
                assert len(rows) == 51, len(rows)
                return rows

            timed(run, 20)
            return timed(run, REQUESTS)
        finally:
            conn.close()
    finally:
        db.engine.dispose()


def measure(backend: str, url: str, work: Path) -> None:
    url = url or f"sqlite:///{work / 'volume' / 'envyard.db'}"
    start = time.perf_counter()
    every, five = populate(url)
    print(f"{backend}: populated {ENVS} environments x {VERSIONS} versions in "
          f"{time.perf_counter() - start:.0f} s")
    svc = Service(work / "volume", channel(), "" if url.startswith("sqlite") else url).start()
    try:
        for label, token in (("a token reading every namespace", every),
                             ("a token reading five namespaces", five)):
            with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {token}"},
                              timeout=30) as c:
                def find() -> object:
                    r = c.get("/api/v1/environments", params={"package": "dask"})
                    r.raise_for_status()
                    assert len(r.json()["environments"]) == 50
                    return r

                timed(find, 30)  # warm up
                ours = timed(find, REQUESTS)
            base = raw_sql(url)
            print(f"{backend}: find?package=dask ({label}): p50 {p(ours, 50):.1f} ms, "
                  f"p99 {p(ours, 99):.1f} ms (goal < 50 ms); raw SQL p50 {p(base, 50):.2f} "
                  f"ms, p99 {p(base, 99):.2f} ms; p99 ratio {p(ours, 99) / p(base, 99):.1f}x")
    finally:
        svc.stop()


def main() -> None:
    on_each_backend(measure)

if __name__ == "__main__":
    main()
    exit_now()
