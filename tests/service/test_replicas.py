"""Two service processes on one PostgreSQL and one volume: submissions to either are
numbered once and built once; a replica killed mid-build is settled by the other."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.servers import Postgres, Service
from tests.service.conftest import TERMINAL, wait_ready
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(900)
SMALL = "dependencies: [python=3.11, toolz]\n"


@pytest.fixture
def replicas(postgres: Postgres, channel: Path, tmp_path: Path) -> Iterator[list[Service]]:
    url = postgres.new_database()
    root = tmp_path / "volume"
    root.mkdir()
    pair = [Service(root, channel, url) for _ in range(2)]
    for svc in pair:
        svc.start()
    yield pair
    for svc in pair:
        svc.stop()


def _rows(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_hundred_submissions_across_two_replicas(replicas: list[Service]) -> None:
    token = replicas[0].token("team=developer")
    headers = {"Authorization": f"Bearer {token}"}

    def submit(i: int) -> int:
        with httpx.Client(base_url=replicas[i % 2].url, headers=headers, timeout=120) as c:
            r = c.post("/api/v1/environments/team/busy/versions", content=SMALL)
            assert r.status_code == 202, r.text
            return r.json()["version"]

    with ThreadPoolExecutor(20) as pool:
        numbers = list(pool.map(submit, range(100)))
    assert sorted(numbers) == list(range(1, 101))
    with httpx.Client(base_url=replicas[1].url, headers=headers, timeout=60) as c:
        states = [wait_ready(c, "team/busy", n, timeout=600)["state"] for n in range(1, 101)]
        logs = [c.get(f"/api/v1/environments/team/busy/versions/{n}/log").text
                for n in range(1, 101)]
    assert states == ["ready"] * 100
    assert all(log.count("solving for") == 1 for log in logs)  # built once each
    claims = _rows(replicas[0].database_url, "SELECT claimed_by, count(*) FROM versions "
                   "GROUP BY claimed_by")
    assert len(claims) == 2 and all(runner for runner, _ in claims)  # both replicas built
    assert sum(n for _, n in claims) == 100


def test_killed_replica_is_settled_by_the_other(replicas: list[Service]) -> None:
    token = replicas[0].token("team=developer")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=replicas[0].url, headers=headers, timeout=60) as c:
        for _ in range(8):
            assert c.post("/api/v1/environments/team/kill/versions",
                          content=SMALL).status_code == 202
        wait_until(lambda: _rows(replicas[0].database_url, "SELECT id FROM versions WHERE "
                                 "state IN ('solving','installing','packing')"),
                   timeout=60, what="a build to start", every=0.02)
    replicas[0].kill()
    with httpx.Client(base_url=replicas[1].url, headers=headers, timeout=60) as c:
        def settled() -> list[dict[str, Any]] | None:
            found = [c.get(f"/api/v1/environments/team/kill/versions/{n}").json()
                     for n in range(1, 9)]
            return found if all(v["state"] in TERMINAL for v in found) else None

        versions = wait_until(settled, timeout=300, what="every build to be settled",
                              every=0.2)
    assert {v["state"] for v in versions} <= {"ready", "failed"}
    # what the killed replica was building failed; the rest was built by the other
    assert any(v["state"] == "failed" for v in versions)
    assert any(v["state"] == "ready" for v in versions)
    assert all("interrupted" in v["error"] for v in versions if v["state"] == "failed")


def test_gc_waits_for_another_replicas_advisory_lock(postgres: Postgres,
                                                     tmp_path: Path) -> None:
    """Replicas on different nodes share no file lock: GC serialises on PostgreSQL."""
    import psycopg

    from envyard.service.db import Database, migrate
    from envyard.service.gc import GC_LOCK_KEY, apply_plan
    from envyard.service.settings import Settings

    url = postgres.new_database()
    db = Database(url)
    migrate(db.engine)
    results: list[dict] = []
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as other:  # another replica collecting
        other.execute("SELECT pg_advisory_lock(%s)", (GC_LOCK_KEY,))
        gc = threading.Thread(target=lambda: results.append(
            apply_plan(db, Settings(root=tmp_path / "node-b", database_url=url))))
        gc.start()
        gc.join(1.5)
        assert gc.is_alive() and not results  # waits for the other collection
        other.execute("SELECT pg_advisory_unlock(%s)", (GC_LOCK_KEY,))
        gc.join(30)
    assert not gc.is_alive() and results[0]["deleted"] == []
    db.engine.dispose()


def test_a_cancel_reaches_the_process_that_builds(postgres: Postgres, channel: Path,
                                                  tmp_path: Path) -> None:
    """Before: a cancel only set an event in the memory of the process that took the
    request, which answered "cancelling"; the build in the other process went on to
    ready. The cancel is now recorded in the database, where every builder looks."""
    from tests.servers import serve_directory

    release = threading.Event()

    def hold(path: str) -> None:  # the build waits in a download until the test says
        if "/toolz-" in path:
            release.wait(120)

    url = postgres.new_database()
    root = tmp_path / "volume"
    root.mkdir()
    with serve_directory(channel, before=hold) as (channel_url, requested):
        builder, other = (Service(root, channel_url, url).start(),  # type: ignore[arg-type]
                          Service(root, channel_url, url).start())  # type: ignore[arg-type]
        try:
            token = builder.token("team=developer")
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=builder.url, headers=headers, timeout=60) as c:
                number = c.post("/api/v1/environments/team/stop/versions",
                                content=SMALL).json()["version"]
                wait_until(lambda: any("/toolz-" in p for p in requested), timeout=120,
                           what="the build to fetch toolz", every=0.05)
            with httpx.Client(base_url=other.url, headers=headers, timeout=60) as c:
                r = c.post(f"/api/v1/environments/team/stop/versions/{number}/cancel")
                assert r.status_code == 200 and r.json()["state"] == "cancelling", r.text
                release.set()
                v = wait_ready(c, "team/stop", number, timeout=300)
                log = c.get(f"/api/v1/environments/team/stop/versions/{number}/log").text
        finally:
            release.set()
            builder.stop()
            other.stop()
    assert v["state"] == "cancelled", (v["state"], log)
    assert log.rstrip().endswith("cancelled") and "ready" not in log.splitlines()[-1]
    assert v["current"] is False
