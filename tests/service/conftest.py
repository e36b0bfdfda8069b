"""Service fixtures: PostgreSQL once per session; `envyard serve` per module and backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envyard.service.db import Database
from tests.servers import Service
from tests.waiting import wait_until

TERMINAL = {"ready", "failed", "cancelled"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, channel: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    url = request.getfixturevalue("postgres").new_database() \
        if request.param == "postgresql" else ""
    svc = Service(tmp_path_factory.mktemp("svc") / "volume", channel, url,
                  {"ENVYARD_ALLOWED_CHANNELS": '["conda-forge", "file://*", "/*"]'})
    svc.root.mkdir()
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database of each backend with no schema yet: a test migrates it as it needs."""
    url = request.getfixturevalue("postgres").new_database() \
        if request.param == "postgresql" else f"sqlite:///{tmp_path / 'envyard.db'}"
    db = Database(url)
    yield db
    db.engine.dispose()


@pytest.fixture(scope="module")
def dev_token(service: Service) -> str:
    return service.token("team=developer")


def api(service: Service, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=service.url, headers=headers, timeout=60)


def wait_ready(client: httpx.Client, env: str, number: int, timeout: float = 180
               ) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        v: dict[str, Any] = client.get(f"/api/v1/environments/{env}/versions/{number}").json()
        return v if v["state"] in TERMINAL else None

    return wait_until(finished, timeout=timeout, what=f"{env} version {number} to finish")


def build(client: httpx.Client, env: str, deps: str) -> dict[str, Any]:
    """Submit ``dependencies: [python=3.11, <deps>]`` and return the version, ready."""
    r = client.post(f"/api/v1/environments/{env}/versions",
                    content=f"dependencies: [python=3.11, {deps}]\n")
    assert r.status_code == 202, r.text
    v = wait_ready(client, env, r.json()["version"])
    assert v["state"] == "ready", v["error"]
    return v
