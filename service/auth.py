"""Tokens and roles: secrets are shown once and stored as sha256; roles are per namespace.

A token carries roles on namespaces (``viewer`` < ``developer`` < ``admin``; namespace ``*``
means every namespace) and an optional expiry. Without a token a request is refused unless
the configuration lets anonymous users read. Every token is made by ``new_token``; the
self-service rules (a subset of the maker's roles, the lifetime cap, owners, revoking) are
``service.tokens``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from envyard.service.db import Database
from envyard.service.errors import Forbidden, Invalid, Unauthorized
from envyard.service.models import Role, Token, TokenRole, WebSession, as_utc, utcnow

PREFIX = "ey_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def role_in(roles: dict[str, Role], namespace: str) -> Role | None:
    """The role ``roles`` give on ``namespace``: its own entry, else ``*``'s."""
    return roles.get(namespace) or roles.get("*")


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's name and roles, or anonymous. ``owner`` is the person it
    acts for (``hub:<user>``, or ``token:<id>`` of a token that owns itself), whose
    tokens it may list and revoke; None for anonymous."""

    name: str
    roles: dict[str, Role]
    anonymous_read: bool = False
    csrf_token: str | None = None  # set when a browser's cookie authenticated the request
    owner: str | None = None
    token_id: int | None = None  # the envyard token that authenticated the request
    expires_at: dt.datetime | None = None  # that token's expiry
    session_ends: dt.datetime | None = None  # a browser's web session ends then

    def role_on(self, namespace: str) -> Role | None:
        return role_in(self.roles, namespace)

    def readable(self) -> set[str] | None:
        """The namespaces this principal may read; None: every one."""
        if "*" in self.roles or self.anonymous_read:
            return None
        return set(self.roles)

    def can(self, namespace: str, needed: Role, *, anonymous: bool = True) -> bool:
        """Whether this principal has ``needed`` on ``namespace``; ``anonymous=False``
        for what the anonymous-read setting must not open (the service's own figures)."""
        role = self.role_on(namespace)
        if role is not None and role.allows(needed):
            return True
        return anonymous and self.anonymous_read and needed is Role.viewer

    def require(self, namespace: str, needed: Role, *, anonymous: bool = True) -> None:
        if not self.can(namespace, needed, anonymous=anonymous):
            have = self.role_on(namespace)
            raise Forbidden(f"{self.name} needs the {needed.value} role on namespace "
                            f"'{namespace}' (it has {have.value if have else 'no role'} there)")


MAX_LIFETIME = dt.timedelta(days=3650)


def new_token(session: Session, *, name: str, roles: dict[str, Role],
              expires_at: dt.datetime | None = None, owner: str | None = None
              ) -> tuple[Token, str]:
    """Store a new token (flushed: it has its id) and return it with its secret, the only
    time the secret is visible. Every token is made here."""
    secret = PREFIX + secrets.token_urlsafe(32)
    token = Token(name=name, token_hash=hash_token(secret), owner=owner, expires_at=expires_at,
                  roles=[TokenRole(namespace=ns, role=r.value) for ns, r in roles.items()])
    session.add(token)
    session.flush()
    return token, secret


def create_token(session: Session, *, name: str, roles: dict[str, Role],
                 expires_in: dt.timedelta | None = None) -> str:
    """A token that owns itself (``envyard token create``, the demo): its secret. A
    lifetime, when given, is positive and at most ``MAX_LIFETIME``: zero is not "never"."""
    if expires_in is not None and not dt.timedelta(0) < expires_in <= MAX_LIFETIME:
        raise Invalid(f"a token's lifetime must be more than 0 and at most "
                      f"{MAX_LIFETIME.days} days (leave it out for a token that never "
                      "expires)")
    return new_token(session, name=name, roles=roles,
                     expires_at=utcnow() + expires_in if expires_in else None)[1]


#: Seconds a token's roles are remembered per process (roles are not edited in place;
#: expiry is checked on every request against the remembered expiry). A token revoked
#: through another process may still be accepted here for this long.
CACHE_SECONDS = 10.0


class TokenCache:
    """envyard tokens resolved to principals, remembered for ``CACHE_SECONDS``: most
    requests then need no database round trip (nor a worker thread) to say who asks.
    ``forget`` drops revoked tokens at once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hits: dict[str, tuple[float, Principal]] = {}
        # revoked token ids, until a lookup that began before the revocation can no
        # longer be put in the cache (so it cannot bring the token back)
        self._revoked: dict[int, float] = {}
        self._lock = threading.Lock()

    def forget(self, token_ids: list[int]) -> None:
        """Revoked tokens: out of the cache, and kept out while lookups begun before the
        revocation finish."""
        now = time.monotonic()
        gone = set(token_ids)
        with self._lock:
            self._revoked = {i: t for i, t in self._revoked.items() if t > now}
            self._revoked.update((i, now + CACHE_SECONDS) for i in gone)
            self._hits = {k: hit for k, hit in self._hits.items()
                          if hit[1].token_id not in gone}

    def forget_header(self, header: str) -> None:
        """A credential that ended (a web session logged out): out of the cache at once."""
        with self._lock:
            self._hits.pop(hash_token(header), None)

    def peek(self, header: str | None, *, anonymous_read: bool) -> Principal | None:
        """The remembered principal of ``header``, or None (then call ``principal``)."""
        if not header:
            return None
        with self._lock:
            hit = self._hits.get(hash_token(header))
        if hit is None or hit[0] < time.monotonic() or hit[1].anonymous_read != anonymous_read:
            return None
        now = utcnow()
        if any(t is not None and t <= now for t in (hit[1].expires_at, hit[1].session_ends)):
            return None  # expired: the full check says so
        return hit[1]

    def principal(self, header: str | None, *, anonymous_read: bool) -> Principal:
        with self.db.session() as session:
            principal = authenticate(session, header, anonymous_read=anonymous_read)
        if header and principal.token_id is not None:
            with self._lock:
                if self._revoked.get(principal.token_id, 0.0) > time.monotonic():
                    return principal  # read before its revocation committed: not kept
                if len(self._hits) > 4096:
                    self._hits.clear()
                self._hits[hash_token(header)] = (time.monotonic() + CACHE_SECONDS, principal)
        return principal


#: How a web session (``start_session``) is named where a header would be: its cookie
#: is read into ``Session <secret>`` (``api.deps``), which resolves like a token.
SESSION_SCHEME = "Session"
#: The longest a browser stays logged in with one token login.
SESSION_LIFETIME = dt.timedelta(hours=12)


def authenticate(session: Session, header: str | None, *, anonymous_read: bool) -> Principal:
    """Resolve an ``Authorization`` header (or a web session) into a principal, or 401."""
    if not header:
        if anonymous_read:
            return Principal("anonymous", {}, anonymous_read=True)
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>' "
                           "(create one with `envyard token create`)")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() == SESSION_SCHEME.lower() and secret:
        return _session_principal(session, secret, anonymous_read)
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    token = session.scalar(select(Token).options(selectinload(Token.roles))
                           .where(Token.token_hash == hash_token(secret)))
    if token is None:
        raise Unauthorized("unknown token")
    return _token_principal(token, anonymous_read)


def _token_principal(token: Token, anonymous_read: bool,
                     session_ends: dt.datetime | None = None) -> Principal:
    """``token``'s principal, unless it has expired (through a web session ending then)."""
    expires = as_utc(token.expires_at) if token.expires_at is not None else None
    if expires is not None and expires <= utcnow():
        raise Unauthorized(f"token '{token.name}' expired at {expires.isoformat()}")
    return Principal(token_name(token), {r.namespace: Role(r.role) for r in token.roles},
                     anonymous_read=anonymous_read, owner=token.owner or f"token:{token.id}",
                     token_id=token.id, expires_at=expires, session_ends=session_ends)


def _session_principal(session: Session, secret: str, anonymous_read: bool) -> Principal:
    found = session.execute(select(WebSession, Token).join(Token)
                            .options(selectinload(Token.roles))
                            .where(WebSession.id == hash_token(secret))).first()
    if found is None:
        raise Unauthorized("not logged in (the session ended): log in again")
    web, token = found
    ends = as_utc(web.expires_at)
    if ends <= utcnow():
        raise Unauthorized("the login expired: log in again")
    return _token_principal(token, anonymous_read, ends)


def start_session(db: Database, token: str) -> tuple[str, Principal]:
    """Log a browser in with an envyard token: a new session secret (for its cookie; the
    token itself never leaves the request) and who it is. Ends by ``SESSION_LIFETIME``,
    the token's expiry, ``end_session`` or the token's revocation. Expired sessions are
    swept here."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    with db.session(write=True) as s:
        s.execute(delete(WebSession).where(WebSession.expires_at <= now))
        row = s.scalar(select(Token).options(selectinload(Token.roles))
                       .where(Token.token_hash == hash_token(token)))
        if row is None:
            raise Unauthorized("unknown token")
        who = _token_principal(row, False)
        ends = now + SESSION_LIFETIME
        if who.expires_at is not None:
            ends = min(ends, who.expires_at)
        s.add(WebSession(id=hash_token(secret), token_id=row.id, created_at=now,
                         expires_at=ends))
    return secret, who


def end_session(db: Database, secret: str) -> None:
    """Log a browser out: its session is gone (the cache is the caller's: ``forget``)."""
    with db.session(write=True) as s:
        s.execute(delete(WebSession).where(WebSession.id == hash_token(secret)))


def token_name(token: Token) -> str:
    """How a token's requests name it (in errors, ``submitted_by``): with its owner."""
    kind, _, who = (token.owner or "").partition(":")
    if kind == "hub":
        return f"token '{token.name}' of hub user '{who}'"
    if kind == "token":
        return f"token '{token.name}' of token {who}"
    return f"token '{token.name}'"
