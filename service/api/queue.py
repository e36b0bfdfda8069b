"""The build queue as operators see it: what waits, what builds where, which runners live."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from envyard.service.api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep
from envyard.service.api.schemas import QueueOut
from envyard.service.models import Environment, Namespace, Role, Version, as_utc
from envyard.service.runners import live_runners
from envyard.service.transitions import LIVE

router = APIRouter(prefix="/api/v1", tags=["queue"])


@router.get("/queue", response_model=QueueOut)
def read_queue(session: SessionDep, who: PrincipalDep, runner: RunnerDep,
               settings: SettingsDep) -> dict[str, Any]:
    """Every unfinished build, oldest first, with who claimed it; the runners alive; this
    replica's runner. Needs a role on '*' (it spans every namespace)."""
    who.require("*", Role.viewer, anonymous=False)
    rows = session.execute(
        select(Namespace.name, Environment.name, Version.number, Version.state,
               Version.claimed_by, Version.created_at, Version.started_at,
               Version.submitted_by, Version.cancel_requested_at)
        .join(Environment, Version.environment_id == Environment.id)
        .join(Namespace, Environment.namespace_id == Namespace.id)
        .where(Version.state.in_(list(LIVE))).order_by(Version.id).limit(1000)).all()
    builds = [{"namespace": ns, "name": name, "number": number, "state": state,
               "claimed_by": claimed, "created_at": as_utc(created),
               "started_at": as_utc(started) if started else None, "submitted_by": by,
               "cancelling": cancel is not None}
              for ns, name, number, state, claimed, created, started, by, cancel in rows]
    return {"runner": {"id": runner.id, "kind": settings.runner,
                       "concurrency": settings.build_concurrency,
                       "pending": runner.pending},
            "runners": live_runners(settings.root), "builds": builds}
