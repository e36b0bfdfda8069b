"""Who holds a role on a namespace (``service.members``) and who may ask
(``GET /api/v1/namespaces/{ns}/members``)."""

from __future__ import annotations

import datetime as dt

from envyard.service.auth import create_token
from envyard.service.db import Database, migrate
from envyard.service.members import members
from envyard.service.models import Namespace, Role, Token
from envyard.service.settings import Settings
from tests.servers import Service
from tests.service.conftest import api


def listed(db: Database, settings: Settings, ns: str, service_wide: bool) -> list[tuple]:
    with db.session() as s:
        return [(m.who, m.role.value, m.via) for m in members(s, settings, ns,
                                                               service_wide=service_wide)]


def test_tokens_grants_and_admins_with_the_role_they_really_give(empty_db: Database) -> None:
    migrate(empty_db.engine)
    with empty_db.session(write=True) as s:
        s.add_all([Namespace(name="geo"), Namespace(name="shared")])
        create_token(s, name="ada", roles={"geo": Role.developer})
        create_token(s, name="ops", roles={"*": Role.admin})
        create_token(s, name="both", roles={"*": Role.viewer, "geo": Role.admin})
        create_token(s, name="other", roles={"elsewhere": Role.admin})
        create_token(s, name="gone", roles={"geo": Role.admin})
        s.flush()
        gone = s.query(Token).filter_by(name="gone").one()
        gone.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    alone = Settings()
    assert listed(empty_db, alone, "geo", service_wide=False) == [
        ("token 'both'", "admin", "token"), ("token 'ada'", "developer", "token")]
    # operators (a role on '*') only for those who administer the namespace
    assert listed(empty_db, alone, "geo", service_wide=True) == [
        ("token 'both'", "admin", "token"), ("token 'ops'", "admin", "token"),
        ("token 'ada'", "developer", "token")]
    hub = Settings(hub={"api_url": "http://127.0.0.1:1/hub/api",
                        "grants": {"{user}": "developer", "shared": "viewer",
                                   "team-{user}": "viewer"}})
    assert ("hub user 'geo'", "developer", "hub grant") in listed(empty_db, hub, "geo", False)
    assert ("hub admins", "admin", "hub admins") in listed(empty_db, hub, "geo", False)
    # on 'shared' a user named 'shared' gets viewer (the later rule), as every user does
    shared = listed(empty_db, hub, "shared", False)
    assert ("every hub user", "viewer", "hub grant") in shared
    assert not any(who == "hub user 'shared'" for who, _, _ in shared)
    assert ("hub user 'ada'", "viewer", "hub grant") in listed(empty_db, hub, "team-ada",
                                                               False)


def test_members_are_for_readers_of_the_namespace(service: Service) -> None:
    admin = service.token("*=admin", name="operator")
    with api(service, admin) as c:
        assert c.post("/api/v1/environments/mem/e/versions",
                      content="dependencies: [python=3.11]\n").status_code == 202
        seen_by_admin = c.get("/api/v1/namespaces/mem/members").json()["members"]
        assert c.get("/api/v1/namespaces/nosuch/members").status_code == 404
    assert any(m["who"] == "token 'operator'" for m in seen_by_admin)
    viewer = service.token("mem=viewer", name="reader")
    with api(service, viewer) as c:
        seen = c.get("/api/v1/namespaces/mem/members").json()["members"]
    assert [m["who"] for m in seen if m["via"] == "token"] == ["token 'reader'"]
    with api(service, service.token("other=admin")) as c:
        assert c.get("/api/v1/namespaces/mem/members").status_code == 403
    with api(service, None) as c:
        assert c.get("/api/v1/namespaces/mem/members").status_code == 401
