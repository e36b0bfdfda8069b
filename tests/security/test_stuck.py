"""No build stays stuck: the watchdog, orphans of a lost write, a database outage, and log
streams that end when their version can no longer change."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envyard.service.catalog import new_version
from envyard.service.db import Database, migrate
from envyard.service.models import Version, utcnow
from envyard.service.runners import ORPHANED, fail_overdue, settle_orphans
from envyard.service.transitions import State
from tests.servers import Postgres, Service
from tests.service.conftest import api, wait_ready

BIG = "dependencies: [python=3.11, dask, distributed, numpy, pandas, ipykernel]\n"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'envyard.db'}")
    migrate(database.engine)
    yield database
    database.engine.dispose()


def _version(db: Database, state: str, *, claimed_by: str | None = None,
             started_minutes_ago: float = 0) -> int:
    with db.session(write=True) as s:
        v, _ = new_version(s, "ns", "env", kind="spec", spec_text="dependencies: [x]\n")
        v.state, v.claimed_by = state, claimed_by
        v.started_at = utcnow() - dt.timedelta(minutes=started_minutes_ago)
        return v.id


def _state(db: Database, version_id: int) -> tuple[str, str | None, str | None]:
    with db.session() as s:
        v = s.get(Version, version_id)
        assert v is not None
        return v.state, v.claimed_by, v.error


def test_the_watchdog_fails_a_build_past_every_limit(db: Database) -> None:
    stuck = _version(db, State.packing.value, claimed_by="r1", started_minutes_ago=120)
    fresh = _version(db, State.installing.value, claimed_by="r1", started_minutes_ago=1)
    assert fail_overdue(db, limit=3600) == [stuck]
    state, _, error = _state(db, stuck)
    assert state == "failed" and "watchdog" in (error or "")
    assert _state(db, fresh)[0] == "installing"


def test_a_runners_orphans_are_settled(db: Database) -> None:
    """A build whose last write was lost (the database was away) is not built by any
    thread; its runner's poll settles it instead of leaving it claimed for ever."""
    queued = _version(db, State.queued.value, claimed_by="r1")
    running = _version(db, State.installing.value, claimed_by="r1")
    building = _version(db, State.installing.value, claimed_by="r1")
    others = _version(db, State.installing.value, claimed_by="r2")
    assert settle_orphans(db, "r1", lambda: {building}) == 2
    assert _state(db, queued)[:2] == ("queued", None)  # back to the queue
    assert _state(db, running) == ("failed", "r1", ORPHANED)
    assert _state(db, building)[0] == _state(db, others)[0] == "installing"


def test_a_build_survives_a_database_outage(postgres: Postgres, channel: Path,
                                            tmp_path: Path) -> None:
    """PostgreSQL stops mid-build and comes back: the build's writes are retried, the
    API answers 503 meanwhile (never 500), and the build ends ready."""
    svc = Service(tmp_path / "volume", channel, postgres.new_database())
    svc.root.mkdir()
    svc.start()
    try:
        token = svc.token("outage=developer")
        with api(svc, token) as c:
            n = c.post("/api/v1/environments/outage/env/versions", content=BIG
                       ).json()["version"]
            deadline = time.monotonic() + 60
            while c.get(f"/api/v1/environments/outage/env/versions/{n}").json()[
                    "state"] != "installing":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            postgres.pause()
            try:
                r = c.get(f"/api/v1/environments/outage/env/versions/{n}")
                assert r.status_code == 503, r.text
                assert "retry" in r.json()["detail"] and r.headers["retry-after"]
                assert c.get("/healthz").status_code == 200
                time.sleep(3)
            finally:
                postgres.resume()
            v = wait_ready(c, "outage/env", n)
        assert v["state"] == "ready", v["error"]
    finally:
        svc.stop()


def test_log_streams_end_when_the_version_can_no_longer_change(svc: Service) -> None:
    """A hundred followers of one build share one state query per tick, and each ends
    when the build does (before: a query per follower every 0.2 s on the event loop)."""
    token = svc.token("follow=developer")
    with api(svc, token) as c:
        n = c.post("/api/v1/environments/follow/env/versions",
                   content="dependencies: [python=3.11, toolz]\n").json()["version"]
    ends: list[str] = []

    def follow() -> None:
        url = f"{svc.url}/api/v1/environments/follow/env/versions/{n}/log"
        with httpx.stream("GET", url, params={"follow": "true"}, timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as r:
            last = ""
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    last = line
            ends.append(last)

    threads = [threading.Thread(target=follow) for _ in range(100)]
    for t in threads:
        t.start()
    with api(svc, token) as c:  # the API stays responsive while they follow
        assert c.get("/api/v1/namespaces").status_code == 200
    for t in threads:
        t.join(120)
    assert ends == ['data: {"state": "ready"}'] * 100
    with api(svc, token) as c:  # following a finished version ends at once
        r = c.get(f"/api/v1/environments/follow/env/versions/{n}/log",
                  params={"follow": "true"}, timeout=30)
        assert r.status_code == 200 and r.text.rstrip().endswith('data: {"state": "ready"}')
