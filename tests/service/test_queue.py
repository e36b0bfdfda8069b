"""The build queue as admins see it (``GET /api/v1/queue``) and the runners alive
(``runners.live_runners``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from envyard.service.db import Database
from envyard.service.models import Environment, Version
from envyard.service.runners import RunnerLock, live_runners
from tests.servers import Service
from tests.service.conftest import api, wait_ready


def test_live_runners_are_the_held_locks_and_looking_changes_nothing(tmp_path: Path) -> None:
    alive = RunnerLock(tmp_path)
    dead = tmp_path / "runners" / "deadbeef.lock"
    dead.write_bytes(b"")  # a runner that died: its file stays, unlocked
    try:
        assert live_runners(tmp_path) == [alive.id]
        assert dead.exists()  # settling is the runners' business, not a reader's
    finally:
        alive.release()
    assert live_runners(tmp_path) == []
    assert live_runners(tmp_path / "elsewhere") == []


def test_the_queue_shows_every_unfinished_build_to_admins_only(service: Service) -> None:
    admin = service.token("*=admin", name="operator")
    with api(service, admin) as c:
        first = c.get("/api/v1/queue").json()
        assert first["runner"]["kind"] == "local" and first["runner"]["id"] in first["runners"]
        r = c.post("/api/v1/environments/q/one/versions",
                   content="dependencies: [python=3.11, toolz]\n")
        assert wait_ready(c, "q/one", r.json()["version"])["state"] == "ready"
        assert c.get("/api/v1/queue").json()["builds"] == []  # finished: not in the queue
        # a build another runner holds (one whose lock is elsewhere: it stays as it is)
        db = Database(service.env["ENVYARD_DATABASE_URL"]
                      or f"sqlite:///{service.root / 'envyard.db'}")
        with db.session(write=True) as s:
            env = s.scalar(select(Environment).where(Environment.name == "one"))
            s.add(Version(environment_id=env.id, number=2, kind="spec", state="installing",
                          timings={}, claimed_by="elsewhere", submitted_by="token 'ci'"))
            env.version_counter = 2
        db.engine.dispose()
        [held] = c.get("/api/v1/queue").json()["builds"]
    assert (held["namespace"], held["name"], held["number"], held["state"],
            held["claimed_by"], held["submitted_by"], held["cancelling"]) == (
        "q", "one", 2, "installing", "elsewhere", "token 'ci'", False)
    for roles in (("q=admin",), ("q=viewer",)):
        with api(service, service.token(*roles)) as c:
            assert c.get("/api/v1/queue").status_code == 403
