"""The gateway's ``environment`` option from envyard's answer, without servers: what is
offered, what is refused and with which words, what a choice configures; and who may ask
envyard on behalf of a hub user (the app in this process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from envyard.service.gateway import build_options, cluster_options, overrides
from tests.servers import free_port

PROBLEM = ("team/old fails envyard's Dask pin check against the cluster's pins (API): "
           "dask mismatch (environment 2025.12.0, cluster 2026.1.2)")


def row(ref: str, *, problem: str | None = None, image: str | None = None) -> dict[str, Any]:
    return {"environment": ref, "prefix": f"/volume/prefixes/{ref.replace('/', '-')}",
            "image": image, "problem": problem, "offered": problem is None}


ROWS = [row("team/geo", image="registry/team-geo:v2"), row("team/old", problem=PROBLEM),
        row("team/bare")]


def choices(options: Any) -> list[str]:
    (spec,) = options.get_specification()
    assert spec["field"] == "environment"
    return list(spec["spec"]["options"])


def test_offered_refused_and_configured() -> None:
    options = build_options(ROWS, "process")
    assert choices(options) == ["default", "team/geo", "team/bare"]
    chosen = options.parse_options({"environment": "team/geo"})
    assert options.get_configuration(chosen, None) == {
        "scheduler_cmd": ["/volume/prefixes/team-geo/bin/dask", "scheduler"],
        "worker_cmd": ["/volume/prefixes/team-geo/bin/dask", "worker"]}
    # nothing named: the gateway's own environment, nothing overridden
    assert options.get_configuration(options.parse_options({}), None) == {}
    with pytest.raises(ValueError) as refused:
        options.parse_options({"environment": "team/old"})
    assert str(refused.value) == f"environment 'team/old' refused: {PROBLEM}"
    with pytest.raises(ValueError) as unknown:
        options.parse_options({"environment": "secret/x"})
    assert "'secret/x' is not one you may run a cluster on" in str(unknown.value)
    assert "team/old" not in str(unknown.value)  # only what she may run is named
    with pytest.raises(TypeError):
        options.parse_options({"environment": 3})


def test_kubernetes_offers_environments_with_images() -> None:
    options = build_options(ROWS, "kubernetes")
    assert choices(options) == ["default", "team/geo"]
    chosen = options.parse_options({"environment": "team/geo"})
    assert options.get_configuration(chosen, None)["image"] == "registry/team-geo:v2"
    with pytest.raises(ValueError, match="team/bare has no image"):
        options.parse_options({"environment": "team/bare"})
    assert overrides(None, "kubernetes") == {}


def test_without_the_default_a_user_with_nothing_offered_is_told_why() -> None:
    options = build_options([row("team/old", problem=PROBLEM)], "process",
                            offer_default=False)
    with pytest.raises(ValueError, match="none of yours has distributed"):
        options.get_configuration(options.parse_options({}), None)
    assert choices(build_options(ROWS, "process", offer_default=False)) == [
        "team/geo", "team/bare"]


def test_envyard_not_answering_leaves_the_gateway_its_own_environment() -> None:
    class User:
        name, groups, admin = "alice", ["geo"], False

    make = cluster_options(f"http://127.0.0.1:{free_port()}", "token", timeout=2)
    options = asyncio.run(make(User()))
    assert choices(options) == ["default"]
    with pytest.raises(ValueError, match="envyard did not answer"):
        options.parse_options({"environment": "team/geo"})


def test_only_an_admin_everywhere_asks_for_a_hub_user(tmp_path: Path) -> None:
    from envyard.service.app import create_app
    from envyard.service.auth import create_token
    from envyard.service.models import Role
    from envyard.service.settings import Settings

    app = create_app(Settings(root=tmp_path / "volume", default_channels=[str(tmp_path)]))

    async def ask() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            with app.state.db.session(write=True) as s:
                team_admin = create_token(s, name="t", roles={"team": Role.admin})
                admin = create_token(s, name="a", roles={"*": Role.admin})
            out = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://t") as c:
                for secret, params in ((team_admin, {"user": "alice"}),
                                       (team_admin, {}), (admin, {"user": "alice"}),
                                       (admin, {"user": "alice", "group": ["a"] * 300})):
                    out.append(await c.get("/api/v1/dask/environments", params=params,
                                           headers={"Authorization": f"Bearer {secret}"}))
                out.append(await c.get("/api/v1/dask/environments"))
            return out

    own_team, mine, theirs, too_many, anonymous = asyncio.run(ask())
    assert own_team.status_code == 403, own_team.text
    assert "admin role on namespace '*'" in own_team.json()["detail"]
    assert mine.status_code == 200 and mine.json() == {"user": "token 't'", "environments": []}
    assert theirs.json() == {"user": "hub user 'alice'", "environments": []}
    assert too_many.status_code == 422
    assert anonymous.status_code == 401
