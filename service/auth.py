"""Tokens and roles: secrets are shown once and stored as sha256; roles are per namespace.

A token carries roles on namespaces (``viewer`` < ``developer`` < ``admin``; namespace ``*``
means every namespace) and an optional expiry. Without a token a request is refused unless
the configuration lets anonymous users read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from envyard.service.db import Database
from envyard.service.errors import Forbidden, Invalid, Unauthorized
from envyard.service.models import Role, Token, TokenRole, utcnow

PREFIX = "ey_"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's name and roles, or anonymous."""

    name: str
    roles: dict[str, Role]
    anonymous_read: bool = False
    csrf_token: str | None = None  # set when a browser's cookie authenticated the request

    def role_on(self, namespace: str) -> Role | None:
        return self.roles.get(namespace) or self.roles.get("*")

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


def create_token(session: Session, *, name: str, roles: dict[str, Role],
                 expires_in: dt.timedelta | None = None) -> str:
    """Store a new token and return its secret (the only time it is visible). A lifetime,
    when given, is positive and at most ``MAX_LIFETIME``: zero is not "never"."""
    if expires_in is not None and not dt.timedelta(0) < expires_in <= MAX_LIFETIME:
        raise Invalid(f"a token's lifetime must be more than 0 and at most "
                      f"{MAX_LIFETIME.days} days (leave it out for a token that never "
                      "expires)")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = Token(name=name, token_hash=hash_token(secret),
                  expires_at=utcnow() + expires_in if expires_in else None,
                  roles=[TokenRole(namespace=ns, role=r.value) for ns, r in roles.items()])
    session.add(token)
    return secret


#: Seconds a token's roles are remembered per process (roles are not edited in place;
#: expiry is checked on every request against the remembered expiry).
CACHE_SECONDS = 10.0


class TokenCache:
    """envyard tokens resolved to principals, remembered for ``CACHE_SECONDS``: most
    requests then need no database round trip (nor a worker thread) to say who asks."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hits: dict[str, tuple[float, Principal, dt.datetime | None]] = {}
        self._lock = threading.Lock()

    def peek(self, header: str | None, *, anonymous_read: bool) -> Principal | None:
        """The remembered principal of ``header``, or None (then call ``principal``)."""
        if not header:
            return None
        with self._lock:
            hit = self._hits.get(hash_token(header))
        if hit is None or hit[0] < time.monotonic() or hit[1].anonymous_read != anonymous_read:
            return None
        if hit[2] is not None and hit[2] <= utcnow():
            return None  # expired: the full check says so
        return hit[1]

    def principal(self, header: str | None, *, anonymous_read: bool) -> Principal:
        with self.db.session() as session:
            principal, expires = _authenticate(session, header, anonymous_read=anonymous_read)
        if header and principal.name != "anonymous":
            with self._lock:
                if len(self._hits) > 4096:
                    self._hits.clear()
                self._hits[hash_token(header)] = (time.monotonic() + CACHE_SECONDS, principal,
                                                  expires)
        return principal


def authenticate(session: Session, header: str | None, *, anonymous_read: bool) -> Principal:
    """Resolve an ``Authorization`` header into a principal, or raise 401."""
    return _authenticate(session, header, anonymous_read=anonymous_read)[0]


def _authenticate(session: Session, header: str | None, *, anonymous_read: bool
                  ) -> tuple[Principal, dt.datetime | None]:
    """Resolve an ``Authorization`` header into a principal, or raise 401."""
    if not header:
        if anonymous_read:
            return Principal("anonymous", {}, anonymous_read=True), None
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>' "
                           "(create one with `envyard token create`)")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    token = session.scalar(select(Token).options(selectinload(Token.roles))
                           .where(Token.token_hash == hash_token(secret.strip())))
    if token is None:
        raise Unauthorized("unknown token")
    expires = token.expires_at
    if expires is not None:
        if expires.tzinfo is None:  # SQLite drops the zone; stored values are UTC
            expires = expires.replace(tzinfo=dt.UTC)
        if expires <= utcnow():
            raise Unauthorized(f"token '{token.name}' expired at {expires.isoformat()}")
    return Principal(f"token '{token.name}'", {r.namespace: Role(r.role) for r in token.roles},
                     anonymous_read=anonymous_read), expires
