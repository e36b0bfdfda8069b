"""JupyterHub identities: a hub token (or a hub OAuth login) becomes a principal with roles.

envyard is registered in the hub as a service. A request carrying a token envyard did not
issue is asked about at the hub (``GET /hub/api/user``); the token must grant access to
this service. The user's roles come from ``hub.grants`` (by default developer on the
namespace named after the user, viewer on ``shared``; ``{group}`` rules per hub group),
``hub.group_grants`` and ``hub.admins``; the hub's answer, groups included, is reused for
``hub.identity_seconds``. The same rules
choose which namespaces' kernels a user's server sees (``jupyter_path``), so what a user
may read through the API and in the notebook is one decision.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from envyard.builder.spec import NAME_RE
from envyard.service.auth import Principal, role_in
from envyard.service.db import Database
from envyard.service.errors import Forbidden, Unauthorized
from envyard.service.models import Role, Share
from envyard.service.settings import HubSettings

CACHE_ENTRIES = 4096
_FIELD_RE = re.compile(r"\{(user|group)\}")


def grants_for(user: str, admin: bool, grants: Mapping[str, str], admins: str | None,
               groups: Iterable[str] = (),
               group_grants: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Role]:
    """Roles of hub user ``user`` in hub ``groups``: ``grants`` in order (``{user}`` the
    user's name, ``{group}`` each group's; a later rule reaching a namespace wins), then
    each group's ``group_grants`` and ``admins`` for hub admins, which only raise a role.
    A role on ``*`` raises every named one below it (a token's named entry may narrow its
    ``*``; a hub admin's may not). A template naming an invalid namespace grants nothing."""
    groups = sorted(set(groups))
    roles: dict[str, Role] = {}
    for template, role in grants.items():
        for group in groups if "{group}" in template else [""]:
            namespace = _fill(template, user, group)
            if NAME_RE.fullmatch(namespace):
                roles[namespace] = Role(role)
    raised = [(ns, Role(role)) for group in groups
              for ns, role in (group_grants or {}).get(group, {}).items()
              if ns == "*" or NAME_RE.fullmatch(ns)]
    if admin and admins:
        raised.append(("*", Role(admins)))
    for namespace, role in raised:
        if namespace not in roles or role.allows(roles[namespace]):
            roles[namespace] = role
    every = roles.get("*")
    if every is not None:
        roles = {ns: every if every.allows(role) else role for ns, role in roles.items()}
    return roles


def _fill(template: str, user: str, group: str) -> str:
    """``template`` with ``{user}`` and ``{group}`` replaced in one pass (a user named
    ``{group}`` is not then filled in again)."""
    return _FIELD_RE.sub(lambda m: user if m[1] == "user" else group, template)


def jupyter_path(jupyter_root: Path, user: str, grants: Mapping[str, str],
                 groups: Iterable[str] = (),
                 group_grants: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """``JUPYTER_PATH`` for a user's server by the hub grants alone (the hub's fallback
    when envyard does not answer, and the chart's rule)."""
    return readable_path(jupyter_root, grants_for(user, False, grants, None, groups,
                                                  group_grants))


def readable_path(jupyter_root: Path, roles: Mapping[str, str]) -> str:
    """``JUPYTER_PATH`` for a user's server: the data directory of every namespace its
    ``roles`` (as ``whoami`` answers them) name, and with a role on ``*`` every
    namespace's there now."""
    names = [ns for ns in roles if NAME_RE.fullmatch(ns)]
    if "*" in roles and jupyter_root.is_dir():
        names += sorted(d.name for d in jupyter_root.iterdir()
                        if d.name not in roles and NAME_RE.fullmatch(d.name))
    return ":".join(str(jupyter_root / ns) for ns in names)


def shared_roles(session: Session, user: str, groups: list[str]) -> dict[str, Role]:
    """The roles shares give hub ``user`` (in ``groups``): the strongest per namespace."""
    rows = session.scalars(select(Share).where(or_(
        (Share.kind == "user") & (Share.subject == user),
        (Share.kind == "group") & Share.subject.in_(groups or [""]))))
    roles: dict[str, Role] = {}
    for row in rows:
        role = Role(row.role)
        if roles.get(row.namespace) is None or role.allows(roles[row.namespace]):
            roles[row.namespace] = role
    return roles


def with_shares(roles: dict[str, Role], shared: dict[str, Role]) -> dict[str, Role]:
    """``roles`` and what shares add; a share never lowers a role (nor one ``*`` gives)."""
    out = dict(roles)
    for namespace, role in shared.items():
        held = role_in(out, namespace)
        if held is None or (role != held and role.allows(held)):
            out[namespace] = role
    return out


class HubIdentities:
    """Resolves hub tokens to principals, remembering answers for a minute."""

    def __init__(self, hub: HubSettings, db: Database) -> None:
        assert hub.api_url is not None
        self.db = db
        self.api_url = hub.api_url.rstrip("/")
        self.service_name = hub.service_name
        self.grants: dict[str, str] = dict(hub.grants)
        self.group_grants: dict[str, dict[str, str]] = {
            g: dict(r) for g, r in hub.group_grants.items()}
        self.admins = hub.admins
        self.seconds = hub.identity_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._generation = 0  # bumped by ``forget``: older answers are not remembered
        self._lock = threading.Lock()

    def peek(self, token: str, *, anonymous_read: bool) -> Principal | None:
        """The remembered principal of ``token``, or None (then call ``principal``)."""
        with self._lock:
            hit = self._cache.get(hashlib.sha256(token.encode()).hexdigest())
        if hit and hit[0] > time.monotonic() and hit[1].anonymous_read == anonymous_read:
            return hit[1]
        return None

    def principal(self, token: str, *, anonymous_read: bool) -> Principal:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit, generation = self._cache.get(key), self._generation
        if hit and hit[0] > now:
            return hit[1]
        model = self._ask_hub(token)
        user, groups = model["name"], [g for g in model.get("groups") or () if isinstance(g, str)]
        with self.db.session() as session:
            shared = shared_roles(session, user, groups)
        roles = with_shares(grants_for(user, bool(model.get("admin")), self.grants,
                                       self.admins, groups, self.group_grants), shared)
        principal = Principal(f"hub user '{user}'", roles, anonymous_read=anonymous_read,
                              owner=f"hub:{user}")
        with self._lock:
            if generation != self._generation:
                return principal  # shares changed while it was read: not kept
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now + self.seconds, principal)
        return principal

    def forget(self) -> None:
        """Shares changed: every remembered principal is asked about again."""
        with self._lock:
            self._cache.clear()
            self._generation += 1

    def _ask_hub(self, token: str) -> dict[str, Any]:
        import httpx

        try:
            resp = httpx.get(f"{self.api_url}/user", timeout=10,
                             headers={"Authorization": f"token {token}"})
        except httpx.TransportError as exc:
            raise Unauthorized(f"cannot check the token with the hub ({exc})") from None
        if resp.status_code in (401, 403):
            raise Unauthorized("unknown token (neither envyard's nor the hub's)")
        if resp.status_code != 200:
            raise Unauthorized(f"the hub answered {resp.status_code} checking the token")
        model = resp.json()
        if model.get("kind", "user") != "user":
            raise Forbidden("hub tokens of services carry no envyard roles")
        scopes = set(model.get("scopes") or ())
        if not scopes & {"access:services", f"access:services!service={self.service_name}"}:
            raise Forbidden(f"this hub token does not grant access to the "
                            f"'{self.service_name}' service")
        return model
