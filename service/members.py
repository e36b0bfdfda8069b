"""Who may do what in a namespace: the people and tokens holding a role there, and why.

Roles come from two places today: envyard tokens (a role on the namespace, or on ``*``)
and, with a hub, the ``hub.grants`` rules (``{user}``: the user the namespace is named
after; ``{group}``: the hub group it is named after; a fixed name: every hub user),
``hub.group_grants`` (a group's members) and ``hub.admins`` (hub admins, on every
namespace).
This module reads both into one list; it changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from envyard.service.auth import role_in, token_name
from envyard.service.hub_auth import grants_for
from envyard.service.models import Role, Token, TokenRole, as_utc, utcnow
from envyard.service.settings import Settings

Via = Literal["token", "hub grant", "hub admins"]


@dataclass(frozen=True)
class Member:
    who: str
    role: Role
    via: Via
    expires_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"who": self.who, "role": self.role.value, "via": self.via,
                "expires_at": self.expires_at}


def members(session: Session, settings: Settings, namespace: str, *,
            service_wide: bool) -> list[Member]:
    """Everyone with a role on ``namespace``: unexpired tokens naming it (with
    ``service_wide``, also those holding a role on every namespace, ``*``: operators, whose
    names only the namespace's admins see), the hub grant rules that reach it, hub admins;
    strongest role first, then by name."""
    out: list[Member] = []
    now = utcnow()
    scopes = [namespace, "*"] if service_wide else [namespace]
    tokens = session.scalars(
        select(Token).join(TokenRole).options(selectinload(Token.roles))
        .where(TokenRole.namespace.in_(scopes),
               or_(Token.expires_at.is_(None), Token.expires_at > now))
        .distinct())
    for token in tokens:
        role = role_in({r.namespace: Role(r.role) for r in token.roles}, namespace)
        if role is None:
            continue
        expires = as_utc(token.expires_at) if token.expires_at is not None else None
        out.append(Member(token_name(token), role, "token", expires))
    if settings.hub.api_url:
        out += _hub_members(settings, namespace)
    rank = {Role.admin: 0, Role.developer: 1, Role.viewer: 2}
    return sorted(out, key=lambda m: (rank[m.role], m.who))


def _hub_members(settings: Settings, namespace: str) -> list[Member]:
    """The grant rules that reach ``namespace``, each with the role a user really gets
    there (a later rule naming the same namespace wins, as ``grants_for`` decides)."""
    grants: dict[str, str] = dict(settings.hub.grants)
    found = []
    if namespace in grants:  # a fixed name: every hub user, whoever they are
        found.append(Member("every hub user", Role(grants[namespace]), "hub grant"))
    for template in grants:
        user = _user_of(template, namespace) if "{user}" in template else None
        if user is None:
            continue
        role = grants_for(user, False, grants, None).get(namespace)
        if role is not None and not any(m.role == role for m in found):
            found.append(Member(f"hub user '{user}'", role, "hub grant"))
    group_grants = {g: dict(r) for g, r in settings.hub.group_grants.items()}
    groups = {g for g, r in group_grants.items() if namespace in r or "*" in r}
    for template in grants:  # '{group}' rules: the group the namespace is named after
        group = _user_of(template.replace("{group}", "{user}"), namespace) if (
            "{group}" in template and "{user}" not in template) else None
        if group is not None:
            groups.add(group)
    for group in sorted(groups):
        role = role_in(grants_for("", False, grants, None, [group], group_grants), namespace)
        if role is not None:
            found.append(Member(f"hub group '{group}'", role, "hub grant"))
    if settings.hub.admins:
        found.append(Member("hub admins", Role(settings.hub.admins), "hub admins"))
    return found


def _user_of(template: str, namespace: str) -> str | None:
    """The user whose name makes ``template`` read ``namespace`` (``{user}`` once)."""
    before, _, after = template.partition("{user}")
    if "{user}" in after or not namespace.startswith(before) or not namespace.endswith(after):
        return None
    user = namespace[len(before):len(namespace) - len(after) if after else None]
    return user or None


__all__ = ["Member", "members"]
