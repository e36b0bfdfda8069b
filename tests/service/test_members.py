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


def test_unsharing_takes_the_role_back_from_the_users_tokens(empty_db: Database) -> None:
    """Found by review: a token bob made while alice's namespace was shared with him kept
    the role for its whole life (up to 90 days) after the unshare."""
    from sqlalchemy import select

    from envyard.service.auth import Principal
    from envyard.service.members import share, unshare
    from envyard.service.models import TokenRole

    migrate(empty_db.engine)
    hub = Settings(hub={"api_url": "http://127.0.0.1:1/hub/api",
                        "grants": {"{user}": "developer", "shared": "viewer"}})
    alice = Principal("hub user 'alice'", {"alice": Role.admin, "shared": Role.admin},
                      owner="hub:alice")
    with empty_db.session(write=True) as s:
        s.add_all([Namespace(name="alice"), Namespace(name="shared"), Namespace(name="geo")])
        for ns in ("alice", "shared", "geo"):
            share(s, hub, alice, ns, "user", "bob", Role.developer)
        made = Token(name="bob's", owner="hub:bob", token_hash="0" * 64, roles=[
            TokenRole(namespace="alice", role="developer"),
            TokenRole(namespace="shared", role="developer"),
            TokenRole(namespace="bob", role="developer"),
            TokenRole(namespace="geo", role="developer")])
        others = Token(name="carol's", owner="hub:carol", token_hash="1" * 64,
                       roles=[TokenRole(namespace="alice", role="viewer")])
        s.add_all([made, others])
    with empty_db.session(write=True) as s:
        unshare(s, hub, alice, "alice", "user", "bob")
        unshare(s, hub, alice, "shared", "user", "bob")
        share(s, hub, alice, "geo", "user", "bob", Role.viewer)  # lowered: so are tokens
    with empty_db.session() as s:
        rows = s.execute(select(Token.name, TokenRole.namespace, TokenRole.role)
                         .join(TokenRole)).all()
    assert sorted(rows) == [("bob's", "bob", "developer"), ("bob's", "geo", "viewer"),
                            ("bob's", "shared", "viewer"),
                            ("carol's", "alice", "viewer")]



def test_a_hub_answer_read_while_shares_change_is_not_remembered(empty_db: Database) -> None:
    """Found by review: a principal read before an unshare committed was cached after the
    unshare's ``forget`` and kept the share for ``identity_seconds``."""
    from typing import Any

    from envyard.service.auth import Principal
    from envyard.service.hub_auth import HubIdentities
    from envyard.service.members import share

    migrate(empty_db.engine)
    settings = Settings(hub={"api_url": "http://127.0.0.1:1/hub/api"})
    with empty_db.session(write=True) as s:
        s.add(Namespace(name="alice"))
        share(s, settings, Principal("a", {"alice": Role.admin}), "alice", "user", "bob",
              Role.viewer)

    class SlowHub(HubIdentities):
        def _ask_hub(self, token: str) -> dict[str, Any]:
            model = {"name": "bob", "groups": [], "admin": False}
            if token == "racing":  # the share goes while the hub is being asked
                self.forget()
            return model

    hub = SlowHub(settings.hub, empty_db)
    assert hub.principal("racing", anonymous_read=False).role_on("alice") is Role.viewer
    assert hub.peek("racing", anonymous_read=False) is None
    hub.principal("calm", anonymous_read=False)
    assert hub.peek("calm", anonymous_read=False) is not None
