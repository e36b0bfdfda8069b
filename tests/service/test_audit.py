"""The audit log: every write records one event with its actor, action and target; a
refused write records none; a namespace admin reads only that namespace's events; pages
hand out every event once."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import httpx
import pytest

from envyard.service.db import Database
from tests.servers import ENVYARD, Service
from tests.service.conftest import api, build, wait_ready
from tests.waiting import wait_until


class Log:
    """The audit log as an admin of ``*`` reads it, checked one write at a time."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.last = max((e["id"] for e in self.newer(0)), default=0)

    def newer(self, after: int) -> list[dict[str, Any]]:
        r = self.client.get("/api/v1/audit", params={"limit": 500})
        assert r.status_code == 200, r.text
        return [e for e in r.json()["events"] if e["id"] > after]

    def one(self, action: str, actor: str, namespace: str | None = None,
            environment: str | None = None, version: int | None = None,
            **detail: Any) -> dict[str, Any]:
        """The write since the last check recorded exactly this one event."""
        events = self.newer(self.last)
        assert len(events) == 1, events
        event = events[0]
        assert (event["action"], event["actor"], event["namespace"], event["environment"],
                event["version"]) == (action, actor, namespace, environment, version), event
        assert detail.items() <= event["detail"].items(), event
        self.last = event["id"]
        return event

    def none(self) -> None:
        assert self.newer(self.last) == []


def test_each_write_records_one_event_and_a_refused_one_none(service: Service) -> None:
    dev = service.token("aud=developer", name="dev")
    nsadmin = service.token("aud=admin", name="nsadmin")
    root = service.token("*=admin", name="root")
    with api(service, root) as r, api(service, dev) as d, api(service, nsadmin) as a:
        log = Log(r)
        service.token("aud=viewer", name="late")  # the local command writes too
        log.one("token_create", f"local user '{_user()}'", name="late",
                roles={"aud": "viewer"})
        DEV, ADMIN, ROOT = "token 'dev'", "token 'nsadmin'", "token 'root'"

        spec = "dependencies: [python=3.11, toolz]\n"
        headers = {"Idempotency-Key": "k1"}
        first = d.post("/api/v1/environments/aud/e/versions", content=spec,
                       headers=headers, params={"message": "first"})
        assert first.status_code == 202, first.text
        log.one("submit", DEV, "aud", "e", 1, message="first")
        again = d.post("/api/v1/environments/aud/e/versions", content=spec, headers=headers)
        assert again.json()["version"] == 1
        log.none()  # a retry: the first attempt's version, recorded once
        assert wait_ready(d, "aud/e", 1)["state"] == "ready"

        lock = d.get("/api/v1/environments/aud/e/versions/1/lock").text
        pushed = d.post("/api/v1/environments/aud/e/locks", content=lock)
        assert pushed.status_code == 202, pushed.text
        log.one("push", DEV, "aud", "e", 2)
        assert wait_ready(d, "aud/e", 2)["state"] == "ready"

        assert d.post("/api/v1/environments/aud/e/rollback",
                      json={"version": 1}).status_code == 200
        log.one("rollback", DEV, "aud", "e", 1, previous=2)
        assert d.post("/api/v1/environments/aud/e/versions/2/hold").status_code == 200
        log.one("hold", DEV, "aud", "e", 2)
        assert d.delete("/api/v1/environments/aud/e/versions/2/hold").status_code == 200
        log.one("unhold", DEV, "aud", "e", 2)
        assert d.put("/api/v1/environments/aud/e/description",
                     json={"description": "for the audit"}).status_code == 200
        log.one("describe", DEV, "aud", "e", description="for the audit")

        assert d.post("/api/v1/environments/aud/e/versions/1/cancel").status_code == 409
        log.none()  # a finished build cannot be cancelled
        third = d.post("/api/v1/environments/aud/e/versions", content=spec + "# 3\n")
        log.one("submit", DEV, "aud", "e", 3)
        cancel = d.post("/api/v1/environments/aud/e/versions/3/cancel")
        if cancel.status_code == 200:
            log.one("cancel", DEV, "aud", "e", 3)
        else:  # it finished first: refused, so no event
            assert cancel.status_code == 409, cancel.text
            log.none()
        wait_ready(d, "aud/e", third.json()["version"])

        assert d.put("/api/v1/retention/aud", json={"keep_last": 3}).status_code == 403
        log.none()
        assert a.put("/api/v1/retention/aud", json={"keep_last": 3}).status_code == 200
        log.one("retention", ADMIN, "aud", keep_last=3)
        assert a.put("/api/v1/retention/aud/e", json={"keep_days": 2}).status_code == 200
        log.one("retention", ADMIN, "aud", "e", keep_days=2)
        assert a.put("/api/v1/namespaces/aud/dask", json={"policy": "block"}
                     ).status_code == 200
        log.one("dask_policy", ADMIN, "aud", policy="block")
        assert d.put("/api/v1/environments/aud/e/dask", json={"follow": False}
                     ).status_code == 200
        log.one("dask_policy", DEV, "aud", "e", follow=False)
        # images need a registry, which this service has not: refused, no event
        assert a.put("/api/v1/namespaces/aud/images", json={"enabled": True}
                     ).status_code == 409
        assert d.post("/api/v1/environments/aud/e/versions/1/image").status_code == 409
        log.none()
        assert a.put("/api/v1/namespaces/aud/images", json={"enabled": False}
                     ).status_code == 200
        log.one("images_policy", ADMIN, "aud", enabled=False)
        assert d.put("/api/v1/environments/aud/e/images", json={"enabled": None}
                     ).status_code == 200
        log.one("images_policy", DEV, "aud", "e", enabled=None)

        assert d.put("/api/v1/namespaces/aud/quota", json={"bytes": 1}).status_code == 403
        log.none()
        assert a.put("/api/v1/namespaces/aud/quota", json={"bytes": 1}).status_code == 200
        log.one("quota", ADMIN, "aud", bytes=1)
        over = d.post("/api/v1/environments/aud/e/versions", content=spec + "# 4\n")
        assert over.status_code == 409 and "quota" in over.json()["detail"], over.text
        log.none()
        assert a.put("/api/v1/namespaces/aud/quota", json={"bytes": None}).status_code == 200
        log.one("quota", ADMIN, "aud", bytes=None)

        assert a.put("/api/v1/dask/pins", json={"versions": {"dask": "2025.12.0"}}
                     ).status_code == 403
        log.none()
        assert r.put("/api/v1/dask/pins", json={"versions": {"dask": "2025.12.0"}}
                     ).status_code == 200
        log.one("dask_pins", ROOT, versions={"dask": "2025.12.0"})

        assert d.post("/api/v1/environments/aud/e/versions/2/hold").status_code == 200
        log.one("hold", DEV, "aud", "e", 2)
        held = d.delete("/api/v1/environments/aud/e")
        assert held.status_code == 409 and "held" in held.json()["detail"], held.text
        log.none()
        assert d.delete("/api/v1/environments/aud/e", params={"force": "true"}
                        ).status_code == 200
        log.one("delete_environment", DEV, "aud", "e", force=True, released_holds=1)

        assert d.post("/api/v1/environments/aud/f/versions", content=spec).status_code == 202
        log.one("submit", DEV, "aud", "f", 1)
        assert d.delete("/api/v1/namespaces/aud").status_code == 403
        log.none()
        assert a.delete("/api/v1/namespaces/aud").status_code == 200
        log.one("delete_namespace", ADMIN, "aud", environments=["f"], force=False)

        assert d.post("/api/v1/gc").status_code == 403
        log.none()
        assert r.post("/api/v1/gc").status_code == 200
        log.one("gc", ROOT)

        # an applied upgrade (no environment here talks to a cluster: nothing to build)
        # is the admin's; the pins it moves once its builds are ready are the service's
        applied = r.post("/api/v1/dask/upgrade", json={"versions": {"dask": "2025.11.0"},
                                                       "apply": True})
        assert applied.status_code == 200, applied.text
        upgrade = log.one("dask_upgrade", ROOT, submitted=0)
        moved = wait_until(lambda: log.newer(log.last) or None, timeout=30,
                           what="the upgrade's pins to move")
        assert [(e["action"], e["actor"], e["detail"]["upgrade"]) for e in moved] == [
            ("dask_pins", "envyard", upgrade["detail"]["upgrade"])]


def _user() -> str:
    import getpass

    return getpass.getuser()


def test_a_namespace_admin_reads_only_that_namespace(service: Service) -> None:
    root = service.token("*=admin", name="root")
    with api(service, service.token("iso1=developer", "iso2=developer", name="d")) as d:
        for env in ("iso1/a", "iso2/b"):
            assert d.put(f"/api/v1/environments/{env}/dask", json={"follow": None}
                         ).status_code == 404  # no such environment: refused, no event
            build(d, env, "toolz")
    with api(service, root) as r:
        assert r.put("/api/v1/dask/pins", json={"versions": {"dask": "2025.12.0"}}
                     ).status_code == 200
        everything = r.get("/api/v1/audit", params={"limit": 500}).json()["events"]
    assert {"iso1", "iso2", None} <= {e["namespace"] for e in everything}

    with api(service, service.token("iso1=admin", "iso2=viewer", name="a1")) as a:
        mine = a.get("/api/v1/audit", params={"limit": 500}).json()["events"]
        assert mine and {e["namespace"] for e in mine} == {"iso1"}
        assert mine == [e for e in everything if e["namespace"] == "iso1"]
        for other in ("iso2", "nosuch"):  # another's, or none at all: the same refusal
            refused = a.get("/api/v1/audit", params={"namespace": other})
            assert refused.status_code == 403, refused.text
        env = a.get("/api/v1/audit", params={"namespace": "iso1", "environment": "a",
                                             "action": "submit"}).json()["events"]
        assert [(e["environment"], e["action"]) for e in env] == [("a", "submit")]
    # a namespace's own role counts there even beside '*' (as for every other route)
    with api(service, service.token("*=admin", "iso2=viewer", name="most")) as m:
        seen = {e["namespace"] for e in m.get("/api/v1/audit", params={"limit": 500}
                                              ).json()["events"]}
        assert "iso2" not in seen and {"iso1", None} <= seen
        assert m.get("/api/v1/audit", params={"namespace": "iso2"}).status_code == 403
    for roles in (("iso1=developer",), ("iso1=viewer",), ("*=developer",)):
        with api(service, service.token(*roles)) as c:
            assert c.get("/api/v1/audit").status_code == 403, roles
    with api(service, None) as anonymous:
        assert anonymous.get("/api/v1/audit").status_code == 401


def test_pages_hand_out_every_event_once(service: Service) -> None:
    with api(service, service.token("pages=admin", "*=admin", name="pager")) as c:
        build(c, "pages/p", "toolz")
        for n in range(23):
            assert c.put("/api/v1/namespaces/pages/quota", json={"bytes": 10**9 + n}
                         ).status_code == 200
        query = {"namespace": "pages", "actor": "token 'pager'"}
        whole = c.get("/api/v1/audit", params={**query, "limit": 500}).json()
        assert whole["next"] is None and len(whole["events"]) == 24
        seen: list[int] = []
        cursor = None
        while True:
            page = c.get("/api/v1/audit", params={**query, "limit": 5,
                                                  **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            seen += [e["id"] for e in page.json()["events"]]
            cursor = page.json()["next"]
            if cursor is None:
                break
        assert seen == [e["id"] for e in whole["events"]] == sorted(set(seen), reverse=True)
        assert whole["events"][0]["detail"] == {"bytes": 10**9 + 22}  # newest first

        since = whole["events"][2]["at"]
        assert [e["id"] for e in c.get("/api/v1/audit", params={
            **query, "since": since}).json()["events"]] == seen[:3]
        first = c.get("/api/v1/audit", params={**query, "limit": 5}).json()["next"]
        for bad in (first, "not-a-cursor", "MTIzNDU"):  # another query's, garbage
            r = c.get("/api/v1/audit", params={"namespace": "pages", "cursor": bad})
            assert r.status_code == 422 and "cursor" in r.text, r.text
        assert c.get("/api/v1/audit", params={"action": "nonsense"}).status_code == 422

        done = subprocess.run([ENVYARD, "audit", "--env", "pages/p", "--limit", "30"],
                              env={**os.environ, "ENVYARD_SERVER": service.url,
                                   "ENVYARD_TOKEN": c.headers["Authorization"][7:]},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and "token 'pager'" in lines[0] and "submit" in lines[0]
        assert "pages/p/1" in lines[0]
        done = subprocess.run([ENVYARD, "audit", "--namespace", "pages", "--limit", "7"],
                              env={**os.environ, "ENVYARD_SERVER": service.url,
                                   "ENVYARD_TOKEN": c.headers["Authorization"][7:]},
                              capture_output=True, text=True, timeout=60)
        lines = done.stdout.splitlines()
        assert len(lines) == 8 and all(len(line) <= 80 for line in lines), lines
        assert "bytes=1000000022" in lines[0] and "--limit" in lines[-1]


def test_an_event_commits_with_its_change_or_not_at_all(empty_db: Database) -> None:
    """``record`` writes into the caller's transaction: rolled back with it."""
    from sqlalchemy import func, select

    from envyard.service import audit
    from envyard.service.db import migrate
    from envyard.service.models import AuditEvent, Namespace

    migrate(empty_db.engine)
    with pytest.raises(RuntimeError), empty_db.session(write=True) as s:
        s.add(Namespace(name="lost"))
        audit.record(s, "someone", audit.Action.quota, "lost", bytes=1)
        raise RuntimeError("the change fails after the event was added")
    with empty_db.session(write=True) as s:
        s.add(Namespace(name="kept"))
        audit.record(s, "x" * 300, audit.Action.quota, "kept", bytes=2)
    with empty_db.session() as s:
        rows = s.execute(select(AuditEvent.namespace, AuditEvent.actor,
                                AuditEvent.detail)).all()
        assert [(ns, len(actor), detail) for ns, actor, detail in rows] == [
            ("kept", 100, {"bytes": 2})]
        assert s.scalar(select(func.count()).select_from(Namespace)) == 1
