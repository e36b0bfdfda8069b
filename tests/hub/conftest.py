"""The hub fixture: `envyard serve --hub` on loopback (a real JupyterHub, proxy and local
spawner), one per test module; its hub's URL is ``hub.hub_url``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Service, free_port
from tests.waiting import wait_until


def wait_for_hub(url: str) -> None:
    wait_until(lambda: httpx.get(f"{url}/hub/api/", timeout=1).status_code == 200,
               timeout=60, what="the hub to answer", every=0.2, ignoring=(httpx.TransportError,))


@pytest.fixture(scope="module")
def hub(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    svc = Service(tmp_path_factory.mktemp("hub") / "volume", channel,
                  extra_env={"ENVYARD_HUB__PORT": str(port)}, args=["--hub"])
    svc.root.mkdir()
    svc.start()
    svc.hub_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    wait_for_hub(svc.hub_url)  # type: ignore[attr-defined]
    yield svc
    svc.stop()
