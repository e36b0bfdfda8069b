"""The audit log: who changed what, and when.

``record`` adds the event to the session that makes the change, so it commits with the
change or not at all: a write that is refused (403, a 409, a quota) or fails leaves no
event, and a change that committed always has one. Every write path calls it; ``page``
reads the log for a caller, newest first, only what the caller administers.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from envyard.service.auth import Principal
from envyard.service.errors import Forbidden, Invalid
from envyard.service.models import AuditAction, AuditEvent, Role

Action = AuditAction

#: The actor of what the service does on its own (a scheduled GC, pins an upgrade moved).
SERVICE = "envyard"


def record(session: Session, who: Principal | str, action: AuditAction,
           namespace: str | None = None, environment: str | None = None,
           version: int | None = None, **detail: Any) -> AuditEvent:
    """Add one event to ``session`` (the change's own transaction). ``who`` is the caller
    (its name, as a version's ``submitted_by``) or a name such as ``SERVICE``; ``detail``
    is a few JSON values (the new quota, force=true), never a whole spec."""
    actor = who.name if isinstance(who, Principal) else who
    event = AuditEvent(actor=actor[:100], action=action, namespace=namespace,
                       environment=environment, version=version, detail=detail,
                       at=_now())
    session.add(event)
    return event


def local_user() -> str:
    """The actor of an admin command run on the service's machine (``envyard token
    create``): the account that ran it, named as principals are named."""
    import getpass

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a bare container)
        import os

        user = f"uid {os.getuid()}"
    return f"local user '{user}'"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Scope:
    """The events a caller may read: every one but those of ``excluded`` (an admin of
    ``*``), or only those of ``namespaces`` (a namespace admin; never service-wide)."""

    namespaces: frozenset[str] | None
    excluded: frozenset[str] = frozenset()

    @classmethod
    def of(cls, who: Principal) -> Scope:
        """What ``who`` administers, as ``Principal.can`` decides it (a namespace's own
        role is the one that counts there, even beside ``*``); 403 for nobody's admin."""
        if who.can("*", Role.admin, anonymous=False):
            return cls(None, frozenset(ns for ns, role in who.roles.items()
                                       if ns != "*" and not role.allows(Role.admin)))
        mine = frozenset(ns for ns in who.roles if ns != "*"
                         and who.can(ns, Role.admin, anonymous=False))
        if not mine:
            raise Forbidden(f"{who.name} needs the admin role on a namespace to read its "
                            "audit log")
        return cls(mine)

    def allows(self, namespace: str) -> bool:
        if self.namespaces is None:
            return namespace not in self.excluded
        return namespace in self.namespaces

    def require(self, namespace: str) -> None:
        """A filter on a namespace the caller does not administer is refused (403),
        whether or not it exists: an empty page would leak nothing either, but a refusal
        says plainly why nothing is shown."""
        if not self.allows(namespace):
            raise Forbidden(f"reading the audit log of namespace '{namespace}' needs the "
                            "admin role there")


@dataclass(frozen=True)
class Filters:
    """A query of the log; every field None: no filter."""

    namespace: str | None = None
    environment: str | None = None
    action: AuditAction | None = None
    actor: str | None = None
    since: dt.datetime | None = None

    def digest(self) -> str:
        """Ties a cursor to its query: a cursor used with other filters is refused."""
        text = repr((self.namespace, self.environment, self.action, self.actor,
                     self.since.astimezone(dt.UTC).isoformat() if self.since else None))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def encode_cursor(before: int, filters: Filters) -> str:
    raw = f"{before}.{filters.digest()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, filters: Filters) -> int:
    """The id a page continues below; ``Invalid`` for a cursor this query did not give."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        number, _, digest = raw.partition(".")
        before = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid("cursor: not one this service gave out") from None
    if digest != filters.digest() or not 0 < before < 2**31:
        raise Invalid("cursor: it belongs to a query with other filters (or is not one "
                      "this service gave out); start again without it")
    return before


def page(session: Session, scope: Scope, filters: Filters, *, before: int | None,
         limit: int) -> tuple[list[AuditEvent], int | None]:
    """Up to ``limit`` events in ``scope`` matching ``filters``, newest first (keyset on
    the id), and the id the next page continues below (None: this was the last)."""
    query = select(AuditEvent)
    if scope.namespaces is not None:
        query = query.where(AuditEvent.namespace.in_(sorted(scope.namespaces)))
    elif scope.excluded:
        query = query.where(or_(AuditEvent.namespace.is_(None),
                                AuditEvent.namespace.not_in(sorted(scope.excluded))))
    if filters.namespace is not None:
        query = query.where(AuditEvent.namespace == filters.namespace)
    if filters.environment is not None:
        query = query.where(AuditEvent.environment == filters.environment)
    if filters.action is not None:
        query = query.where(AuditEvent.action == filters.action)
    if filters.actor is not None:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.since is not None:  # as stored: UTC (SQLite keeps no zone)
        query = query.where(AuditEvent.at >= filters.since.astimezone(dt.UTC))
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more else None


def as_dict(event: AuditEvent) -> dict[str, Any]:
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=dt.UTC)  # SQLite: UTC
    return {"id": event.id, "at": at, "actor": event.actor, "action": event.action,
            "namespace": event.namespace, "environment": event.environment,
            "version": event.version, "detail": event.detail}


__all__ = ["SERVICE", "Action", "Filters", "Scope", "as_dict",
           "decode_cursor", "encode_cursor", "local_user", "page", "record"]
