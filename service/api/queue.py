"""The build queue as operators see it: what waits, what builds where, which runners live."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from envyard.service.api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep
from envyard.service.api.schemas import QueueOut
from envyard.service.models import Role
from envyard.service.runners import live_runners, unfinished_builds

router = APIRouter(prefix="/api/v1", tags=["queue"])


@router.get("/queue", response_model=QueueOut)
def read_queue(session: SessionDep, who: PrincipalDep, runner: RunnerDep,
               settings: SettingsDep) -> dict[str, Any]:
    """Every unfinished build, oldest first, with who claimed it; the runners alive; this
    replica's runner. Needs a role on '*' (it spans every namespace)."""
    who.require("*", Role.viewer, anonymous=False)
    return {"runner": {"id": runner.id, "kind": settings.runner,
                       "concurrency": settings.build_concurrency,
                       "pending": runner.pending},
            "runners": live_runners(settings.root), "builds": unfinished_builds(session)}
