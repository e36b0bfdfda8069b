"""What a hub user may start a server in (the spawn form, KubeSpawner profiles, jhub-apps)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from envyard.service.api.deps import PrincipalDep, SessionDep, SettingsDep, shown_path
from envyard.service.api.schemas import SpawnEnvironments
from envyard.service.spawnable import spawnable

router = APIRouter(prefix="/api/v1", tags=["hub"])


@router.get("/spawn/environments", response_model=SpawnEnvironments)
def spawn_environments(session: SessionDep, who: PrincipalDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """The environments the caller may start a hub server in: readable, the current
    version ready with a kernel; with its kernel, prefix and image (a KubeSpawner profile
    when it has one)."""
    # the namespaces the caller's roles name (all of them for a role on '*'): those whose
    # kernels its server lists, so a choice always has its kernel (anonymous reading,
    # which puts no kernels on the path, adds none)
    rows = spawnable(session, settings, None if "*" in who.roles else set(who.roles))
    return {"environments": [
        {**row.as_dict(), "prefix": shown_path(row.prefix, settings, who, row.namespace)}
        for row in rows]}
