"""The audit log: who changed what and when, for admins (of ``*``, or of a namespace)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from envyard.builder.spec import NAME_RE
from envyard.service import audit
from envyard.service.api.deps import PrincipalDep, SessionDep
from envyard.service.api.schemas import AuditPage
from envyard.service.models import AuditAction

router = APIRouter(prefix="/api/v1", tags=["audit"])


NamespaceFilter = Annotated[str | None, Query(
    pattern=NAME_RE.pattern, max_length=64,
    description="Only this namespace's events (403 unless you administer it).")]
EnvironmentFilter = Annotated[str | None, Query(
    pattern=NAME_RE.pattern, max_length=64,
    description="Only events of environments of this name.")]
ActorFilter = Annotated[str | None, Query(
    max_length=100, description="Exactly this actor, e.g. token 'ci' or hub user 'ada'.")]
Since = Annotated[dt.datetime | None, Query(
    description="Only events at or after this time (ISO 8601; without an offset: UTC).")]
Cursor = Annotated[str | None, Query(max_length=64,
                                     description="The `next` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/audit", response_model=AuditPage)
def read_audit(session: SessionDep, who: PrincipalDep, namespace: NamespaceFilter = None,
               environment: EnvironmentFilter = None, action: AuditAction | None = None,
               actor: ActorFilter = None, since: Since = None, cursor: Cursor = None,
               limit: Limit = 50) -> dict[str, Any]:
    """Who submitted, pushed, rolled back, held, deleted, or changed a policy, quota or
    pins, and when; newest first, a page at a time. An admin of `*` reads every event; an
    admin of a namespace reads that namespace's only (not service-wide ones)."""
    scope = audit.Scope.of(who)
    if namespace is not None:
        scope.require(namespace)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    filters = audit.Filters(namespace, environment, action, actor, since)
    before = audit.decode_cursor(cursor, filters) if cursor is not None else None
    events, last = audit.page(session, scope, filters, before=before, limit=limit)
    return {"events": [audit.as_dict(e) for e in events],
            "next": audit.encode_cursor(last, filters) if last is not None else None}
