"""Choosing an environment when a hub server starts: helpers for ``jupyterhub_config.py``.

All of them ask envyard's ``GET /api/v1/spawn/environments`` as the user (a short-lived
hub token the hub makes for them, or the server's own token at spawn), so what a user
may choose is envyard's decision, the same as for the API and the kernels listed::

    from envyard.service import spawn
    c.Spawner.options_form = spawn.options_form(URL)      # a form (the embedded hub)
    c.Spawner.options_from_form = spawn.options_from_form
    # in a pre_spawn_hook: await spawn.apply_choice(spawner, URL, volume_root)
    c.KubeSpawner.profile_list = spawn.profile_list(URL, IMAGE)  # the pod runs its image
    c.JAppsConfig.conda_envs = spawn.jhub_apps_conda_envs(URL, token)

Only the standard library and tornado (which every hub has) are imported here.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
import os
import re
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("envyard.spawn")

#: The user option naming the chosen environment (``namespace/name``).
OPTION = "environment"
_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: What a choice sets in the server's environment (and what starting without one clears).
_CHOICE_VARIABLES = ("PATH", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "ENVYARD_ENVIRONMENT")
_DEFAULT_KERNEL = "--MultiKernelManager.default_kernel_name="

TokenFor = Callable[[Any], "str | Awaitable[str]"]


def hub_user_token(service: str = "envyard") -> TokenFor:
    """A hub token of the spawner's user that may call only envyard, for a minute
    (the options form is drawn before the server has its own token)."""

    def token_for(spawner: Any) -> str:
        token: str = spawner.user.new_api_token(
            note="envyard: environments to start a server in", expires_in=60,
            scopes=[f"access:services!service={service}"])
        return token

    return token_for


async def environments(url: str, token: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """envyard's rows for the token's user (``GET /api/v1/spawn/environments``)."""
    from tornado.httpclient import AsyncHTTPClient

    resp = await AsyncHTTPClient().fetch(
        f"{url.rstrip('/')}/api/v1/spawn/environments", request_timeout=timeout,
        headers={"Authorization": f"Bearer {token}"})  # a hub token or envyard's
    rows: list[dict[str, Any]] = json.loads(resp.body)["environments"]
    return rows


async def _rows_for(spawner: Any, url: str, token_for: TokenFor) -> list[dict[str, Any]]:
    """envyard's rows for the spawner's user; none (said in the hub's log) when envyard
    does not answer, so the hub's pages still work."""
    try:
        token = token_for(spawner)
        if inspect.isawaitable(token):
            token = await token
        assert isinstance(token, str)
        return await environments(url, token)
    except Exception as exc:
        spawner.log.warning("envyard did not list %s's environments: %s",
                            spawner.user.name, exc)
        return []


def options_form(url: str, service: str = "envyard",
                 token_for: TokenFor | None = None) -> Callable[[Any], Awaitable[str]]:
    """``Spawner.options_form``: a choice of the environments the user may start in
    (none: every readable kernel, no default). No form when there are none (or envyard
    does not answer) unless an earlier choice is saved: the hub would reuse it for a
    start without a form, so the form then offers to drop it."""
    token_for = token_for or hub_user_token(service)

    async def form(spawner: Any) -> str:
        chosen = (spawner.user_options or {}).get(OPTION)
        rows = await _rows_for(spawner, url, token_for)
        if not rows and not chosen:
            return ""
        options = ['<option value="">No default: every kernel you may read</option>']
        for row in rows:
            ref = html.escape(row["environment"])
            picked = " selected" if row["environment"] == chosen else ""
            options.append(f'<option value="{ref}"{picked}>{html.escape(row["display_name"])}'
                           f" ({ref}, v{int(row['version'])})</option>")
        return ('<label for="envyard-environment">Environment (envyard): the default '
                'kernel and <code>PATH</code> of your server</label>\n'
                f'<select class="form-control" id="envyard-environment" name="{OPTION}">'
                + "".join(options) + "</select>")

    return form


def options_from_form(form: dict[str, list[str]]) -> dict[str, Any]:
    """``Spawner.options_from_form``: the chosen environment, or ``""`` for none (said
    out loud: the hub reuses the last options when a start names none)."""
    chosen = (form.get(OPTION) or [""])[0].strip()
    if chosen and not _REF_RE.fullmatch(chosen):
        raise ValueError(f"{chosen!r} is not an environment (namespace/name)")
    return {OPTION: chosen}


async def apply_choice(spawner: Any, url: str, volume: str | Path) -> None:
    """In a ``pre_spawn_hook``: make the chosen environment (``user_options``) the
    server's default kernel and put its ``bin`` first on ``PATH``; without a choice,
    undo an earlier one. Asks envyard with the server's own token, so a choice the user
    may no longer read (or that has no kernel now) fails the spawn with a reason; when
    envyard does not answer, the server starts without the choice (and says so)."""
    from tornado.web import HTTPError  # the hub answers with its status and message

    chosen = (spawner.user_options or {}).get(OPTION)
    env = {k: v for k, v in spawner.environment.items() if k not in _CHOICE_VARIABLES}
    args = [a for a in spawner.args if not a.startswith(_DEFAULT_KERNEL)]
    spawner.environment, spawner.args = env, args  # (traitlets copy: assigned again below)
    if not chosen:
        return
    if not isinstance(chosen, str) or not _REF_RE.fullmatch(chosen):
        raise HTTPError(400, f"{str(chosen)[:140]!r} is not an environment (namespace/name)")
    try:
        rows = await environments(url, spawner.api_token)
    except Exception as exc:
        spawner.log.warning("envyard did not answer about %s (%s): %s's server starts "
                            "without it", chosen, exc, spawner.user.name)
        return
    row = next((r for r in rows if r["environment"] == chosen), None)
    if row is None:
        raise HTTPError(403, f"{chosen} is not an environment you may start a server in "
                        "(none that you may read has a ready version with a kernel); "
                        "choose another on the spawn page")
    prefix = Path(volume) / row["prefix"]  # (relative unless an admin asked)
    env.update(PATH=f"{prefix}/bin:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
               CONDA_PREFIX=str(prefix), CONDA_DEFAULT_ENV=chosen, ENVYARD_ENVIRONMENT=chosen)
    spawner.environment, spawner.args = env, [*args, _DEFAULT_KERNEL + row["kernel_name"]]
    spawner.log.info("%s starts in %s v%s", spawner.user.name, chosen, row["version"])


def profile_list(url: str, default_image: str, service: str = "envyard",
                 token_for: TokenFor | None = None
                 ) -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
    """``KubeSpawner.profile_list``: first the hub's own image (``default_image``, no
    environment), then one profile per environment the user may start in that has an
    image (the pod runs it). KubeSpawner keeps a profile's settings on the spawner, so
    the first profile always sets the image back: a user who lost an environment (or
    when envyard does not answer, then the only profile) never runs its image again."""
    token_for = token_for or hub_user_token(service)
    plain = {"display_name": "No envyard environment", "slug": "none", "default": True,
             "description": "the hub's own image; every kernel you may read",
             "kubespawner_override": {"image": default_image,
                                      "environment": {"ENVYARD_ENVIRONMENT": None}}}

    async def profiles(spawner: Any) -> list[dict[str, Any]]:
        rows = await _rows_for(spawner, url, token_for)
        return [plain, *(row["profile"] for row in rows if row.get("profile"))]

    return profiles


def jhub_apps_conda_envs(url: str, token: str, *, timeout: float = 10.0
                         ) -> Callable[[], list[str]]:
    """``JAppsConfig.conda_envs``: the environments ``token`` (a viewer token of the
    namespaces apps may use) may start in, as ``namespace/name``; jhub-apps calls it at
    every render of its create-app page, without the user."""

    def conda_envs() -> list[str]:
        request = urllib.request.Request(f"{url.rstrip('/')}/api/v1/spawn/environments",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                rows = json.loads(resp.read())["environments"]
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("envyard did not list environments for jhub-apps: %s", exc)
            return []
        return [row["environment"] for row in rows]

    return conda_envs


__all__ = ["OPTION", "apply_choice", "environments", "hub_user_token",
           "jhub_apps_conda_envs", "options_form", "options_from_form", "profile_list"]
