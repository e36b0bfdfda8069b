"""The web UI's doors, attacked: the token login form, its cookie, the CSRF token every
cookie-authenticated write needs, cross-site posts, the asset route, the page's CSP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.servers import Service

SPEC = "dependencies: [python=3.11, toolz]\n"


def browser(svc: Service) -> httpx.Client:
    """A client that keeps cookies, as a browser does, and sends no Authorization."""
    return httpx.Client(base_url=svc.url, timeout=60)


@contextmanager
def logged_in(svc: Service, token: str) -> Iterator[httpx.Client]:
    with browser(svc) as c:
        r = c.post("/ui/login", data={"token": token},
                   headers={"Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/", r.text
        yield c


def test_the_page_asks_for_a_login_and_the_form_refuses_a_bad_token(svc: Service) -> None:
    with browser(svc) as c:
        r = c.get("/ui/")
        assert r.status_code == 302 and r.headers["location"] == "/ui/login"
        assert c.get("/").headers["location"] == "/ui/"  # the hub's Services link lands here
        form = c.get("/ui/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        for bad in ["ey_not-a-token", "", "a b", "<script>alert(1)</script>"]:
            r = c.post("/ui/login", data={"token": bad})
            assert r.status_code == 401, bad
            assert "envyard-session" not in r.headers.get("set-cookie", "")
            assert "<script>alert" not in r.text  # the message never echoes markup
        assert "unknown token" in c.post("/ui/login", data={"token": "ey_x"}).text


def test_a_login_is_a_session_cookie_and_writes_need_the_csrf_token(svc: Service) -> None:
    token = svc.token("web=developer")
    with logged_in(svc, token) as c:
        cookies = c.cookies
        set_cookie = " ".join(c.post("/ui/login", data={"token": token}).headers
                              .get_list("set-cookie"))
        # the token never goes into a cookie: every port of the host name would get it
        assert token not in set_cookie and token[3:] not in set_cookie
        session = set_cookie.split("envyard-session=")[1].split(";")[0]
        assert len(session) >= 40 and "HttpOnly" in set_cookie.split("envyard-csrf")[0]
        page = c.get("/ui/")
        assert page.status_code == 200 and 'src="assets/app.js"' in page.text
        me = c.get("/api/v1/whoami").json()
        assert me["roles"] == {"web": "developer"} and me["csrf_token"]
        assert me["csrf_token"] == cookies.get("envyard-csrf")
        url = "/api/v1/environments/web/x/versions"
        refused = c.post(url, content=SPEC)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
        forged = c.post(url, content=SPEC, headers={"X-CSRF-Token": "0" * 64})
        assert forged.status_code == 403
        accepted = c.post(url, content=SPEC, headers={"X-CSRF-Token": me["csrf_token"]})
        assert accepted.status_code == 202, accepted.text
        # a page of another site may not post with the cookie, even with a token
        cross = c.post(url, content=SPEC, headers={"X-CSRF-Token": me["csrf_token"],
                                                   "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        # the cookie is not a header: an Authorization header still decides alone
        assert c.get("/api/v1/whoami", headers={"Authorization": "Bearer ey_wrong"}
                     ).status_code == 401


def test_logins_and_logouts_from_other_sites_are_refused(svc: Service) -> None:
    """Login CSRF: another site's page logging a victim in as the attacker (whose
    environments the victim would then edit), or logging the victim out."""
    token = svc.token("web=viewer")
    with browser(svc) as c:
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                        {"Origin": "http://evil.example"}):
            r = c.post("/ui/login", data={"token": token}, headers=headers)
            assert r.status_code == 403, headers
            assert "envyard-session" not in c.cookies
    with logged_in(svc, token) as c:
        r = c.post("/ui/logout", headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and c.cookies.get("envyard-session")
        r = c.post("/ui/logout", headers={"Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        assert "envyard-session" not in c.cookies
        assert c.get("/ui/").status_code == 302


@pytest.mark.parametrize("name", ["../routes.py", "..%2froutes.py", "%2e%2e%2f__init__.py",
                                  "index.html", "login.html", "app.js%00.css", ".",
                                  "app.JS"])
def test_only_the_uis_own_assets_are_served(svc: Service, name: str) -> None:
    with browser(svc) as c:
        r = c.get(f"/ui/assets/{name}")
        assert r.status_code == 404, (name, r.status_code)
        assert "import" not in r.text and "def " not in r.text


def test_the_page_loads_code_and_styles_only_from_the_service(svc: Service) -> None:
    with logged_in(svc, svc.token("web=viewer")) as c:
        csp = c.get("/ui/").headers["content-security-policy"]
        asset = c.get("/ui/assets/app.js")
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'self'" in csp
    assert asset.status_code == 200 and asset.headers["content-type"].startswith(
        "text/javascript")
    assert asset.headers["x-content-type-options"] == "nosniff"


def test_a_session_ends_with_its_token_and_at_logout(svc: Service) -> None:
    """The session's secret is worth nothing once its token expires or is revoked, or
    once the browser logged out (a copy of the cookie kept elsewhere is dead too)."""
    import time

    token = svc.token("web=developer", expires_in_days=1.5 / 86400)
    with logged_in(svc, token) as c:
        assert c.get("/api/v1/whoami").status_code == 200
        time.sleep(2)
        r = c.get("/api/v1/whoami")
        assert r.status_code == 401 and "expired" in r.json()["detail"]

    token = svc.token("web=developer")
    with logged_in(svc, token) as c:
        me = c.get("/api/v1/whoami").json()
        made = c.post("/api/v1/tokens", json={"name": "child", "roles": {"web": "viewer"},
                                               "expires_in_days": 1},
                      headers={"X-CSRF-Token": me["csrf_token"]})
        assert made.status_code == 201, made.text
        mine = [t for t in c.get("/api/v1/tokens").json()["tokens"] if t["current"]]
        assert len(mine) == 1  # the session acts as its token
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as owner:
            assert owner.delete(f"/api/v1/tokens/{mine[0]['id']}").status_code == 200
        r = c.get("/api/v1/whoami")
        assert r.status_code == 401, r.text

    with logged_in(svc, svc.token("web=developer")) as c:
        stolen = c.cookies.get("envyard-session")
        c.post("/ui/logout", headers={"Sec-Fetch-Site": "same-origin"})
        with httpx.Client(base_url=svc.url, cookies={"envyard-session": stolen},
                          timeout=30) as thief:
            r = thief.get("/api/v1/whoami")
        assert r.status_code == 401 and "session ended" in r.json()["detail"]
