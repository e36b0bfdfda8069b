"""CSRF protection for writes a browser authenticates with a cookie.

A browser sends envyard's login cookie with every request to the service's path, also
from pages of other sites and of other users' servers on the hub's origin. So a write
authenticated by the cookie (not by an ``Authorization`` header, which no other page can
set) must carry ``X-CSRF-Token``: an HMAC keyed by the session's secret, handed out in the
``envyard-csrf`` cookie (readable by envyard's own pages) and by ``/api/v1/whoami``. A
request the browser marks ``Sec-Fetch-Site: cross-site`` or ``same-site`` is refused
outright. On a hub without subdomains, user servers share the hub's origin and can read
what any same-origin page can: the hub's ``subdomain_host`` is the isolation that holds.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from envyard.service.errors import Forbidden

COOKIE = "envyard-csrf"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_for(session: str) -> str:
    """The CSRF token of a login: an HMAC keyed by the login's own secret (which only the
    browser's HttpOnly cookie holds), so every replica, and a restarted service, derives
    the same token and nobody without the cookie can."""
    return hmac.new(session.encode(), b"envyard-csrf", hashlib.sha256).hexdigest()


def refuse_cross_site(request: Request) -> None:
    """Refuse a request another site's page made (the browser says so): a login form
    posted from elsewhere (login CSRF), a logout, a write with the cookie."""
    site = request.headers.get("sec-fetch-site")
    if site not in (None, "same-origin", "none"):
        raise Forbidden(f"a {site} request may not write with the login cookie")
    # a browser without Sec-Fetch-*: its Origin (the host only: TLS may end at a proxy)
    origin = request.headers.get("origin")
    if site is None and origin is not None and \
            urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden(f"a request from {origin[:100]} may not write with the login "
                        "cookie")


def check(request: Request, session: str) -> None:
    """Refuse a cookie-authenticated write without the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    refuse_cross_site(request)
    sent = request.headers.get(HEADER, "")
    if not hmac.compare_digest(sent.encode(), token_for(session).encode()):
        raise Forbidden(f"this write is authenticated by the login cookie and needs the "
                        f"{HEADER} header (the value of the {COOKIE} cookie, or the "
                        "csrf_token of /api/v1/whoami)")
