"""Self-service tokens: a caller makes tokens that hold no more than its own roles and that
always expire, lists its owner's tokens and revokes one of them.

"Own" is by owner, the person a token acts for (``Principal.owner``): a token a hub user
made belongs to that user (``hub:<user>``), so any of the user's tokens, or the user's hub
login, lists and revokes all of them; a token made by a token that owns itself (``envyard
token create``) belongs to that token (``token:<id>``), and revoking that one revokes
every token it owns. ``issue`` is the one place a self-service token is made (it stores
it through ``auth.new_token``), ``revoke`` the one place any token is revoked.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session, selectinload

from envyard.service import audit
from envyard.service.auth import Principal, new_token, role_in
from envyard.service.catalog import check_name
from envyard.service.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from envyard.service.models import Role, Token, TokenRole, WebSession, utcnow

log = logging.getLogger(__name__)

#: Unexpired tokens one owner may hold at once: enough for every laptop, notebook and CI
#: job, and a bound on what one leaked token can make.
MAX_PER_OWNER = 100


def owner_of(who: Principal) -> str:
    """The owner whose tokens ``who`` may make, list and revoke; anonymous has none."""
    if who.owner is None:
        raise Unauthorized("tokens are made, listed and revoked by someone: send "
                           "'Authorization: Bearer <token>' or log in through the hub")
    return who.owner


def beyond(holder: dict[str, Role], asked: dict[str, Role]) -> list[str]:
    """What a token of ``asked`` could do that ``holder`` cannot, one phrase each (empty:
    ``asked`` is a subset). Compared namespace by namespace as requests are checked
    (``role_in``: a namespace's own entry, else ``*``'s), so ``*`` in ``asked`` must not
    exceed ``holder``'s ``*`` nor any namespace ``holder`` names on its own."""
    problems = []
    for namespace in sorted(set(asked) | set(holder)):
        want, have = role_in(asked, namespace), role_in(holder, namespace)
        if want is None or (have is not None and have.allows(want)):
            continue
        have_text = f"{have.value}" if have else "no role"
        if namespace == "*":
            problems.append(f"*={want.value}: you have {have_text} on '*' (every namespace)")
        elif namespace in asked:
            problems.append(f"{namespace}={want.value}: you have {have_text} there")
        else:
            problems.append(f"*={asked['*'].value} would give {want.value} on '{namespace}', "
                            f"where you have {have_text} (name {namespace} with that role "
                            "or lower)")
    return problems


def issue(session: Session, who: Principal, *, name: str, roles: dict[str, Role],
          days: float | None, max_days: float) -> tuple[Token, str]:
    """A new token of ``who``'s owner holding ``roles`` (a subset of ``who``'s), expiring
    after ``days`` (at most ``max_days``, the ``token_max_days`` setting; default: that),
    and never after the token ``who`` uses: its secret is shown this once."""
    owner = owner_of(who)
    if not name.isprintable() or not name.strip():
        raise Invalid("a token's name must be printable text on one line")
    if not roles:
        raise Invalid("a token needs at least one role, e.g. {\"team\": \"viewer\"}")
    for namespace in roles:
        if namespace != "*":
            check_name("namespace", namespace)
    problems = beyond(who.roles, roles)
    if problems:
        raise Forbidden(f"a token can hold only roles {who.name} holds: "
                        + "; ".join(problems))
    if days is not None and not 0 < days <= max_days:
        raise Invalid(f"a token made through the API lives more than 0 and at most "
                      f"{max_days:g} days (the token_max_days setting); asked: {days:g}")
    now = utcnow()
    expires = now + dt.timedelta(days=max_days if days is None else days)
    if who.expires_at is not None and expires > who.expires_at:
        if days is not None:
            raise Invalid(f"a token cannot outlive the token that makes it, which expires "
                          f"at {who.expires_at.isoformat()}")
        expires = who.expires_at
    held = session.scalar(select(func.count()).select_from(Token).where(
        owned_by(owner), or_(Token.expires_at.is_(None), Token.expires_at > now)))
    if held is not None and held >= MAX_PER_OWNER:
        raise Conflict(f"you hold {held} unexpired tokens, the most one person may: revoke "
                       "some (envyard token list, envyard token revoke ID)")
    token, secret = new_token(session, name=name, roles=roles, expires_at=expires,
                              owner=owner)
    audit.record(session, who, audit.Action.token_create, token=token.id, name=name,
                 roles={ns: r.value for ns, r in roles.items()}, expires_at=expires.isoformat())
    log.info("token %d %r made by %s", token.id, name, who.name)
    return token, secret


def owned_by(owner: str) -> ColumnElement[bool]:
    """The tokens of ``owner``: those it made, and a self-owned token itself."""
    kind, _, ident = owner.partition(":")
    mine = Token.owner == owner
    if kind == "token" and ident.isdigit():
        return or_(mine, and_(Token.id == int(ident), Token.owner.is_(None)))
    return mine


def own_tokens(session: Session, who: Principal) -> list[Token]:
    """``who``'s owner's tokens, expired ones too (revoke them to tidy up), oldest first."""
    return list(session.scalars(select(Token).options(selectinload(Token.roles))
                                .where(owned_by(owner_of(who))).order_by(Token.id)))


def revoke(session: Session, who: Principal, token_id: int) -> list[int]:
    """Delete one of ``who``'s owner's tokens, and with a token that owns itself every
    token it owns; the ids revoked. Another owner's token is "not found", exactly as an
    id that does not exist, so ids cannot be probed. The caller must also tell the
    ``TokenCache`` (after the commit): other processes keep accepting a revoked token
    for up to ``auth.CACHE_SECONDS``."""
    owner = owner_of(who)
    token = session.scalar(select(Token).where(Token.id == token_id, owned_by(owner)))
    if token is None:
        raise NotFound(f"you have no token {token_id}")
    ids = [token.id]
    if token.owner is None:  # an owner itself: what it made ends with it
        ids += session.scalars(select(Token.id).where(Token.owner == f"token:{token.id}"))
    audit.record(session, who, audit.Action.token_revoke, tokens=sorted(ids),
                 name=token.name)
    session.execute(delete(WebSession).where(WebSession.token_id.in_(ids)))
    session.execute(delete(TokenRole).where(TokenRole.token_id.in_(ids)))
    session.execute(delete(Token).where(Token.id.in_(ids)))
    log.info("token%s %s revoked by %s", "s" if len(ids) > 1 else "",
             ", ".join(map(str, sorted(ids))), who.name)
    return sorted(ids)
