"""Who may do what in a namespace: the people and tokens holding a role there, and why.

Roles come from two places today: envyard tokens (a role on the namespace, or on ``*``)
and, with a hub, the ``hub.grants`` rules (``{user}``: the user the namespace is named
after; ``{group}``: the hub group it is named after; a fixed name: every hub user),
``hub.group_grants`` (a group's members) and ``hub.admins`` (hub admins, on every
namespace).
A namespace's admins also share it (``share``/``unshare``): a hub user or a hub group
gets a role there, on top of what the grants give (``shared_roles``, read by
``hub_auth``, so the API and the kernels a server lists follow one decision).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from envyard.service import audit
from envyard.service.auth import Principal, role_in, token_name
from envyard.service.errors import Conflict, NotFound
from envyard.service.hub_auth import grants_for, shared_roles
from envyard.service.models import AuditAction, Role, Share, Token, TokenRole, as_utc, utcnow
from envyard.service.settings import Settings

Via = Literal["token", "hub grant", "hub admins", "shared"]
Kind = Literal["user", "group"]


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
        for row in session.scalars(select(Share).where(Share.namespace == namespace)):
            out.append(Member(f"hub {row.kind} '{row.subject}'", Role(row.role), "shared"))
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


def share(session: Session, settings: Settings, who: Principal, namespace: str,
          kind: Kind, subject: str, role: Role) -> list[int]:
    """Give hub ``kind`` ``subject`` ``role`` on ``namespace`` (replacing its share). A
    lowered share lowers the user's tokens too (``unshare``); the changed tokens' ids."""
    row = session.scalar(select(Share).where(Share.namespace == namespace,
                                             Share.kind == kind, Share.subject == subject))
    trimmed: list[int] = []
    if row is None:
        row = Share(namespace=namespace, kind=kind, subject=subject, role=role.value,
                    granted_by=who.name[:255])
        session.add(row)
    else:
        if kind == "user" and not role.allows(Role(row.role)):
            trimmed = _trim_tokens(session, settings, subject, namespace, role)
        row.role, row.granted_by = role.value, who.name[:255]
    audit.record(session, who, AuditAction.share, namespace, kind=kind, subject=subject,
                 role=role.value, tokens_trimmed=len(trimmed))
    return trimmed


def unshare(session: Session, settings: Settings, who: Principal, namespace: str,
            kind: Kind, subject: str) -> list[int]:
    """Take the share away. A user's envyard tokens lose, on ``namespace``, what is beyond
    the user's own ``hub.grants`` (a token would otherwise keep the share's role until
    it expires; one the user also holds through a group must be made again); a group's
    members' tokens are not known here and keep theirs until revoked. Returns the
    changed tokens' ids (for the caller to drop from its token cache)."""
    row = session.scalar(select(Share).where(Share.namespace == namespace,
                                             Share.kind == kind, Share.subject == subject))
    if row is None:
        raise NotFound(f"{namespace} is not shared with hub {kind} '{subject}'")
    session.delete(row)
    trimmed = _trim_tokens(session, settings, subject, namespace, None) \
        if kind == "user" else []
    audit.record(session, who, AuditAction.unshare, namespace, kind=kind, subject=subject,
                 tokens_trimmed=len(trimmed))
    return trimmed


def _trim_tokens(session: Session, settings: Settings, user: str, namespace: str,
                 cap: Role | None) -> list[int]:
    """Lower hub ``user``'s tokens on ``namespace`` to ``cap`` or what the user's own
    grants give there, whichever is stronger (none: the role goes); their ids."""
    keep = role_in(grants_for(user, False, dict(settings.hub.grants), None), namespace)
    if cap is not None and (keep is None or cap.allows(keep)):
        keep = cap
    trimmed = []
    for held in session.scalars(select(TokenRole).join(Token).where(
            Token.owner == f"hub:{user}", TokenRole.namespace == namespace)):
        if keep is None:
            session.delete(held)
        elif not keep.allows(Role(held.role)):
            held.role = keep.value
        else:
            continue
        trimmed.append(held.token_id)
    return trimmed


def require_hub(settings: Settings) -> None:
    if not settings.hub.api_url:
        raise Conflict("sharing names hub users and groups; this service has no hub "
                       "(give an envyard token a role instead)")


def _user_of(template: str, namespace: str) -> str | None:
    """The user whose name makes ``template`` read ``namespace`` (``{user}`` once)."""
    before, _, after = template.partition("{user}")
    if "{user}" in after or not namespace.startswith(before) or not namespace.endswith(after):
        return None
    user = namespace[len(before):len(namespace) - len(after) if after else None]
    return user or None


__all__ = ["Kind", "Member", "members", "share", "shared_roles", "unshare"]
