"""The UI's routes: the page at ``/ui/``, its assets, and logging in and out.

A browser logs in through the hub (``/login``: the hub's OAuth flow, a hub token in an
HttpOnly cookie) or, outside a hub, with an envyard token posted to ``/ui/login``, which
starts a web session (``auth.start_session``): the cookie holds the session's secret,
never the token (cookies are shared by every port of a host name), and logging out ends
it. Writes then need the CSRF token (``service.csrf``); the login and logout forms refuse
other sites' pages.
"""

from __future__ import annotations

import html
import logging
from functools import cache
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from envyard.builder.errors import EnvyardError
from envyard.service import csrf
from envyard.service.api.deps import SESSION_COOKIE, TOKEN_COOKIE, SettingsDep, read_body
from envyard.service.api.identity import service_root, set_login
from envyard.service.auth import SESSION_SCHEME, end_session, start_session
from envyard.service.errors import NotFound, Unauthorized

router = APIRouter(include_in_schema=False)
logger = logging.getLogger("envyard")

ASSET_DIR = Path(__file__).with_name("assets")
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: What a login form may post: a token is ~50 characters.
MAX_FORM_BYTES = 4096


@cache
def _assets() -> dict[str, str]:
    """Every servable asset by name: a request names one of these or nothing."""
    return {p.name: TYPES[p.suffix] for p in ASSET_DIR.iterdir() if p.suffix in TYPES}


@cache
def _template(name: str) -> Template:
    return Template((ASSET_DIR / name).read_text())


def _hub_public(request: Request) -> str | None:
    hub = request.app.state.hub is not None
    return request.app.state.settings.hub.browser_url if hub else None


def _logged_in(request: Request) -> bool:
    """A login cookie is there (whether it still holds is the API's to say)."""
    hub = request.app.state.hub is not None
    return bool(request.cookies.get(TOKEN_COOKIE if hub else SESSION_COOKIE))


@router.get("/")
def landing(request: Request) -> RedirectResponse:
    """The hub's Services menu links here: people land on the UI."""
    return RedirectResponse(f"{service_root(request)}/ui/", status_code=302)


@router.get("/ui")
def ui_no_slash(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{service_root(request)}/ui/", status_code=302)


@router.get("/ui/")
def page(request: Request, settings: SettingsDep) -> Response:
    """The UI's one page (the views are scripts); to the login first when not logged in."""
    if not _logged_in(request) and settings.anonymous != "read":
        return RedirectResponse(f"{service_root(request)}/ui/login", status_code=302)
    hub = _hub_public(request) or ""
    body = _template("index.html").substitute(hub=html.escape(hub, quote=True))
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/ui/login")
def login_form(request: Request) -> Response:
    """Through the hub when there is one; else a form for an envyard token."""
    if request.app.state.hub is not None:
        target = quote(f"{service_root(request)}/ui/", safe="/")
        return RedirectResponse(f"{service_root(request)}/login?next={target}", status_code=302)
    return _form()


def _form(error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<p class="error" role="alert" id="login-error">{html.escape(error)}</p>' \
        if error else ""
    body = _template("login.html").substitute(
        error=message, invalid='aria-invalid="true"' if error else "",
        errorref=" login-error" if error else "")
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """An envyard token from the form: checked; a web session starts, its secret (not
    the token) in an HttpOnly cookie."""
    if request.app.state.hub is not None:
        raise NotFound("log in through the hub: /login")
    csrf.refuse_cross_site(request)
    form = parse_qs(bytes(await read_body(request, MAX_FORM_BYTES)).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    if not token or not token.isprintable() or " " in token:
        return _form("Paste an envyard token (it starts with ey_).", 401)
    try:
        secret, who = await run_in_threadpool(start_session, request.app.state.db, token)
    except Unauthorized as exc:
        return _form(f"Not logged in: {exc}.", 401)
    except EnvyardError as exc:
        return _form(f"Not logged in: {exc}", 503)
    logger.info("web login of %s", who.name)
    out = RedirectResponse(f"{service_root(request)}/ui/", status_code=303)
    # lax: a link from mail or chat arrives logged in; writes need the CSRF token anyway
    set_login(out, request, SESSION_COOKIE, secret, samesite="lax")
    return out


@router.post("/ui/logout")
async def logout(request: Request) -> RedirectResponse:
    """Forget the login cookies; behind a hub, log out of the hub too (or its OAuth
    would log the browser straight back in)."""
    csrf.refuse_cross_site(request)
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and request.app.state.hub is None:
        await run_in_threadpool(end_session, request.app.state.db, secret)
        request.app.state.tokens.forget_header(f"{SESSION_SCHEME} {secret}")
    hub = _hub_public(request)
    target = f"{hub}/hub/logout" if hub else f"{service_root(request)}/ui/login"
    out = RedirectResponse(target, status_code=303)
    for name in (SESSION_COOKIE, TOKEN_COOKIE, csrf.COOKIE):
        out.delete_cookie(name, path=service_root(request) + "/")
    return out


@router.get("/ui/assets/{name}")
def asset(name: str) -> FileResponse:
    """A script, style or icon of the UI (revalidated: an upgrade is seen at once)."""
    media_type = _assets().get(name)
    if media_type is None:
        raise NotFound(f"no asset {name[:100]}")
    return FileResponse(ASSET_DIR / name, media_type=media_type,
                        headers={"Cache-Control": "no-cache"})
