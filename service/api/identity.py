"""Who am I, and logging in through the hub: JupyterHub's OAuth code flow for browsers.

``/login`` sends the browser to the hub's authorize page; the hub sends it back to
``/oauth_callback`` with a code, which envyard trades for a token bound to this service
and keeps in an HttpOnly cookie. Requests then carry the cookie instead of a header.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from envyard.service import csrf
from envyard.service.api.deps import TOKEN_COOKIE, PrincipalDep, SettingsDep
from envyard.service.api.schemas import WhoAmI
from envyard.service.errors import NotFound, ServiceError, Unauthorized
from envyard.service.settings import Settings

router = APIRouter(tags=["identity"])

STATE_COOKIE = "envyard-oauth-state"


@router.get("/api/v1/whoami", response_model=WhoAmI, response_model_exclude_unset=True)
def whoami(principal: PrincipalDep) -> dict[str, Any]:
    """The caller's name and roles, as envyard resolved them; for a browser logged in by
    cookie also the CSRF token its writes must send (header X-CSRF-Token)."""
    roles = {ns: role.value for ns, role in sorted(principal.roles.items())}
    out: dict[str, Any] = {"name": principal.name, "roles": roles}
    if principal.csrf_token:
        out["csrf_token"] = principal.csrf_token
    return out


def _hub(settings: Settings) -> tuple[str, str, str]:
    """(public hub URL, API URL, redirect URI), or 404 when no hub is configured."""
    if not (settings.hub.api_url and settings.hub.service_token):
        raise NotFound("no JupyterHub is configured (hub.api_url, hub.service_token)")
    api, public = settings.hub.api_url.rstrip("/"), settings.hub.browser_url or ""
    return public, api, f"{public}/services/{settings.hub.service_name}/oauth_callback"


def service_root(request: Request) -> str:
    """The service's own path: '' alone, ``/services/<name>`` behind the hub."""
    return str(request.scope.get("root_path") or "").rstrip("/")


def _cookie_path(request: Request) -> str:
    return service_root(request) + "/"


def _safe_next(request: Request, target: str | None) -> str:
    """Only same-site paths: an OAuth flow must not become an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return _cookie_path(request) + "api/v1/whoami"


@router.get("/login", include_in_schema=False)
def login(request: Request, settings: SettingsDep, next: str | None = None) -> RedirectResponse:
    public, _, redirect_uri = _hub(settings)
    state = secrets.token_urlsafe(24)
    query = urlencode({"client_id": f"service-{settings.hub.service_name}",
                       "redirect_uri": redirect_uri, "response_type": "code", "state": state})
    resp = RedirectResponse(f"{public}/hub/api/oauth2/authorize?{query}", status_code=302)
    resp.set_cookie(STATE_COOKIE, f"{state}:{_safe_next(request, next)}", max_age=600,
                    httponly=True, samesite="lax", path=_cookie_path(request))
    return resp


@router.get("/oauth_callback", include_in_schema=False)
def oauth_callback(request: Request, settings: SettingsDep, code: str = "",
                   state: str = "") -> RedirectResponse:
    import httpx

    _, api, redirect_uri = _hub(settings)
    expected, _, target = (request.cookies.get(STATE_COOKIE) or "").partition(":")
    if not code or not state or not expected or not secrets.compare_digest(state, expected):
        raise Unauthorized("OAuth state mismatch: start again at /login")
    try:
        resp = httpx.post(f"{api}/oauth2/token", timeout=10, data={
            "client_id": f"service-{settings.hub.service_name}",
            "client_secret": settings.hub.service_token, "grant_type": "authorization_code",
            "code": code, "redirect_uri": redirect_uri})
    except httpx.TransportError as exc:
        raise ServiceError(f"cannot reach the hub: {exc}") from None
    if resp.status_code != 200 or "access_token" not in resp.json():
        raise Unauthorized(f"the hub refused the OAuth code ({resp.status_code})")
    request.app.state.hub.principal(resp.json()["access_token"], anonymous_read=False)
    out = RedirectResponse(_safe_next(request, target), status_code=302)
    set_login(out, request, TOKEN_COOKIE, resp.json()["access_token"], samesite="lax")
    out.delete_cookie(STATE_COOKIE, path=_cookie_path(request))
    return out


def set_login(response: Response, request: Request, name: str, secret: str, *,
              samesite: Literal["lax", "strict"]) -> None:
    """A login: the secret in an HttpOnly cookie (no script reads it), and the CSRF
    token of its writes in a cookie envyard's own pages read (same path), which they
    send back as the X-CSRF-Token header."""
    path, secure = _cookie_path(request), request.url.scheme == "https"
    response.set_cookie(name, secret, httponly=True, samesite=samesite, path=path,
                        secure=secure)
    response.set_cookie(csrf.COOKIE, csrf.token_for(secret),
                        samesite="strict", path=path, secure=secure)
