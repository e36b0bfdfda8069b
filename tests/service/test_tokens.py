"""Self-service tokens against a live service (SQLite and PostgreSQL): a token makes tokens
holding no more than its own roles, always expiring within the cap; each person lists and
revokes only their own; a revoked or expired token is refused at once."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envyard.service.auth import hash_token
from envyard.service.tokens import MAX_PER_OWNER
from tests.servers import Service
from tests.service.conftest import api

CAP_DAYS = 30


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, channel: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Anonymous reading is on, so "anonymous cannot make tokens" is a rule of its own."""
    url = request.getfixturevalue("postgres").new_database() \
        if request.param == "postgresql" else ""
    service = Service(tmp_path_factory.mktemp("tokens") / "volume", channel, url,
                      {"ENVYARD_TOKEN_MAX_DAYS": str(CAP_DAYS), "ENVYARD_ANONYMOUS": "read"})
    service.root.mkdir()
    service.start()
    yield service
    service.stop()


def new(c: httpx.Client, name: str, roles: dict[str, str], days: float | None = None
        ) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "roles": roles}
    if days is not None:
        body["expires_in_days"] = days
    r = c.post("/api/v1/tokens", json=body)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    assert made["token"].startswith("ey_") and made["roles"] == roles
    return made


def refused(c: httpx.Client, roles: dict[str, str], **extra: Any) -> httpx.Response:
    return c.post("/api/v1/tokens", json={"name": "x", "roles": roles, **extra})


def listed(c: httpx.Client) -> list[dict[str, Any]]:
    r = c.get("/api/v1/tokens")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["tokens"]
    return rows


def me(c: httpx.Client) -> int:
    """The id of the token ``c`` uses."""
    return next(t["id"] for t in listed(c) if t["current"])


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_a_new_token_holds_only_roles_its_maker_holds(svc: Service) -> None:
    maker = svc.token("team=developer", "shared=viewer")
    with api(svc, maker) as c:
        narrow = new(c, "narrow", {"team": "viewer"})
        with api(svc, narrow["token"]) as t:
            assert t.get("/api/v1/whoami").json()["roles"] == {"team": "viewer"}
            assert t.post("/api/v1/environments/team/x/versions",
                          content="dependencies: [python=3.11]\n").status_code == 403
            # and what it makes holds no more than it does
            r = refused(t, {"team": "developer"})
            assert r.status_code == 403, r.text
            assert "team=developer: you have viewer there" in r.json()["detail"]
        new(c, "same", {"team": "developer", "shared": "viewer"})
        for roles, said in (({"team": "admin"}, "team=admin: you have developer there"),
                            ({"shared": "developer"}, "shared=developer: you have viewer"),
                            ({"other": "viewer"}, "other=viewer: you have no role there"),
                            ({"*": "viewer"}, "*=viewer: you have no role on '*'"),
                            ({"team": "viewer", "other": "viewer"}, "other=viewer")):
            r = refused(c, roles)
            assert r.status_code == 403 and said in r.json()["detail"], (roles, r.text)
            assert "a token can hold only roles" in r.json()["detail"]
    # '*' may not reach past a namespace the maker holds less on than on '*'
    wide = svc.token("*=developer", "team=viewer")
    with api(svc, wide) as c:
        r = refused(c, {"*": "developer"})
        assert r.status_code == 403, r.text
        assert "would give developer on 'team', where you have viewer" in r.json()["detail"]
        new(c, "wide", {"*": "developer", "team": "viewer"})
        new(c, "elsewhere", {"elsewhere": "developer"})  # what '*' gives it
        assert refused(c, {"elsewhere": "admin"}).status_code == 403
    with api(svc, svc.token("*=admin")) as c:
        new(c, "admin", {"*": "admin"})


def test_a_malformed_request_is_refused(svc: Service) -> None:
    with api(svc, svc.token("team=developer")) as c:
        for body in ({"name": "x", "roles": {}},
                     {"name": "x", "roles": {"bad/ns": "viewer"}},
                     {"name": "x", "roles": {"..": "viewer"}},
                     {"name": "x", "roles": {"team": "owner"}},
                     {"name": "", "roles": {"team": "viewer"}},
                     {"name": "a\nb", "roles": {"team": "viewer"}},
                     {"name": "x" * 101, "roles": {"team": "viewer"}},
                     {"name": "x", "roles": {f"n{i}": "viewer" for i in range(65)}},
                     {"name": "x", "roles": {"team": "viewer"}, "owner": "hub:bob"},
                     {"name": "x", "roles": ["team"]}):
            r = c.post("/api/v1/tokens", json=body)
            assert r.status_code == 422, (body, r.text)
        assert listed(c) == [t for t in listed(c) if t["current"]]  # nothing was made


def test_a_new_token_always_expires_within_the_cap(svc: Service) -> None:
    with api(svc, svc.token("team=developer")) as c:  # a token that never expires
        default = new(c, "default", {"team": "viewer"})
        life = when(default["expires_at"]) - when(default["created_at"])
        assert abs(life - dt.timedelta(days=CAP_DAYS)) < dt.timedelta(minutes=1)
        week = new(c, "week", {"team": "viewer"}, days=7)
        assert when(week["expires_at"]) < when(default["expires_at"])
        for days in (CAP_DAYS + 1, 3650, 0, -1):
            r = refused(c, {"team": "viewer"}, expires_in_days=days)
            assert r.status_code == 422, (days, r.text)
        r = refused(c, {"team": "viewer"}, expires_in_days=CAP_DAYS + 0.5)
        assert f"at most {CAP_DAYS} days (the token_max_days setting)" in r.json()["detail"]
        short = new(c, "short", {"team": "viewer"}, days=3 / 86400)  # three seconds
    with api(svc, short["token"]) as s:
        # a token cannot outlive the token that makes it: by default it ends with it
        child = new(s, "child", {"team": "viewer"})
        assert when(child["expires_at"]) == when(short["expires_at"])
        r = refused(s, {"team": "viewer"}, expires_in_days=1)
        assert r.status_code == 422 and "cannot outlive" in r.json()["detail"]
        assert s.get("/api/v1/whoami").status_code == 200
        time.sleep(max(0.0, (when(short["expires_at"]) - dt.datetime.now(dt.UTC))
                       .total_seconds()) + 0.5)
        r = s.get("/api/v1/whoami")  # remembered by the token cache, still refused
        assert r.status_code == 401 and "expired" in r.json()["detail"]
    with api(svc, child["token"]) as t:
        r = t.get("/api/v1/whoami")
        assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_each_lists_only_their_own_tokens_and_never_a_secret(svc: Service) -> None:
    alice, bob = svc.token("team=developer"), svc.token("team=developer")
    with api(svc, alice) as a, api(svc, bob) as b:
        a1, a2 = new(a, "a1", {"team": "viewer"}), new(a, "a2", {"team": "developer"})
        b1 = new(b, "b1", {"team": "viewer"})
        alice_id, bob_id = me(a), me(b)
        seen = a.get("/api/v1/tokens")
        assert [t["id"] for t in seen.json()["tokens"]] == [alice_id, a1["id"], a2["id"]]
        assert [t["id"] for t in listed(b)] == [bob_id, b1["id"]]
        with api(svc, a1["token"]) as t:  # a token alice made lists alice's tokens
            rows = listed(t)
            assert [r["id"] for r in rows] == [alice_id, a1["id"], a2["id"]]
            assert [r["id"] for r in rows if r["current"]] == [a1["id"]]
        row = next(r for r in rows if r["id"] == a2["id"])
        assert set(row) == {"id", "name", "roles", "created_at", "expires_at", "current"}
        assert row["name"] == "a2" and row["roles"] == {"team": "developer"}
        for text in (seen.text, b.get("/api/v1/tokens").text):
            assert "ey_" not in text
            for secret in (alice, bob, a1["token"], a2["token"], b1["token"]):
                assert secret not in text and hash_token(secret) not in text


def test_revoking_ones_own_token_and_not_anothers(svc: Service) -> None:
    alice, bob = svc.token("team=developer"), svc.token("team=developer")
    with api(svc, alice) as a, api(svc, bob) as b:
        a1, a2 = new(a, "a1", {"team": "viewer"}), new(a, "a2", {"team": "viewer"})
        alice_id = me(a)
        with api(svc, a1["token"]) as t:
            assert t.get("/api/v1/whoami").status_code == 200  # now in the token cache
            # bob's answer about alice's token is the answer about a token nobody has
            other, missing = (b.delete(f"/api/v1/tokens/{a1['id']}"),
                              b.delete("/api/v1/tokens/2147483647"))
            assert other.status_code == missing.status_code == 404
            assert other.json()["detail"].replace(str(a1["id"]), "N") == \
                missing.json()["detail"].replace("2147483647", "N")
            assert t.get("/api/v1/whoami").status_code == 200  # untouched
            assert a.delete(f"/api/v1/tokens/{a1['id']}").json() == {"revoked": [a1["id"]]}
            r = t.get("/api/v1/whoami")  # at once, although it was cached
            assert r.status_code == 401, r.text
            assert a.delete(f"/api/v1/tokens/{a1['id']}").status_code == 404
        assert [r["id"] for r in listed(a)] == [alice_id, a2["id"]]
        for bad in ("0", "-1", "x", str(2**31), "1.5"):
            assert a.delete(f"/api/v1/tokens/{bad}").status_code == 422, bad
        # a token alice made may revoke alice's own: what alice's token made ends with it
        with api(svc, a2["token"]) as t:
            assert t.get("/api/v1/whoami").status_code == 200
            r = t.delete(f"/api/v1/tokens/{alice_id}")
            assert r.json() == {"revoked": sorted([alice_id, a2["id"]])}, r.text
            assert t.get("/api/v1/whoami").status_code == 401
        assert a.get("/api/v1/whoami").status_code == 401
        assert b.get("/api/v1/whoami").status_code == 200 and len(listed(b)) == 1


def test_anonymous_callers_cannot_make_list_or_revoke(svc: Service) -> None:
    with api(svc, None) as c:
        assert c.get("/api/v1/namespaces").status_code == 200  # anonymous may read
        for r in (refused(c, {"team": "viewer"}), c.get("/api/v1/tokens"),
                  c.delete("/api/v1/tokens/1")):
            assert r.status_code == 401 and "Authorization" in r.json()["detail"], r.text


def test_one_person_holds_a_bounded_number_of_tokens(svc: Service) -> None:
    with api(svc, svc.token("many=viewer")) as c:
        for i in range(MAX_PER_OWNER - 1):  # the maker is one of them
            new(c, f"t{i}", {"many": "viewer"})
        r = refused(c, {"many": "viewer"})
        assert r.status_code == 409 and "revoke" in r.json()["detail"], r.text
        c.delete(f"/api/v1/tokens/{listed(c)[-1]['id']}")
        new(c, "again", {"many": "viewer"})


def test_making_and_revoking_a_token_is_in_the_audit_log(svc: Service) -> None:
    with api(svc, svc.token("team=developer")) as a, api(svc, svc.token("*=admin")) as root:
        made = new(a, "laptop", {"team": "viewer"})
        assert a.delete(f"/api/v1/tokens/{made['id']}").status_code == 200
        events = root.get("/api/v1/audit", params={"limit": 200}).json()["events"]
        created = [e for e in events if e["action"] == "token_create"
                   and e["detail"].get("token") == made["id"]]
        revoked = [e for e in events if e["action"] == "token_revoke"
                   and made["id"] in e["detail"].get("tokens", [])]
        assert len(created) == len(revoked) == 1
        assert created[0]["detail"]["roles"] == {"team": "viewer"}
        assert "token" in created[0]["actor"] and revoked[0]["detail"]["name"] == "laptop"
        assert "secret" not in str(created[0]) and made["token"] not in str(events)
        # a refused request records nothing
        before = len(root.get("/api/v1/audit", params={"limit": 200}).json()["events"])
        assert refused(a, {"*": "admin"}).status_code == 403
        assert len(root.get("/api/v1/audit", params={"limit": 200}).json()["events"]) == before


def test_a_role_on_a_name_with_a_trailing_newline_is_refused(svc: Service) -> None:
    """A namespace name is matched whole: "team\\n" is not "team" nor a name at all."""
    with api(svc, svc.token("*=developer")) as a:
        r = refused(a, {"team\n": "viewer"})
        assert r.status_code == 422 and "must match" in r.json()["detail"], r.text
        assert all("team\n" not in row["roles"] for row in listed(a))
