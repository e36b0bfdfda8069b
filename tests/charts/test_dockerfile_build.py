"""The service image, built for real: podman builds the Dockerfile on a base made from this
machine's Python (no registry outside is reachable), offline from the wheelhouse
`tests/setup.sh` fills; the container runs as a non-root user and answers /healthz."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envyard.builder.registry import Registry
from tests.conftest import REPO
from tests.images import Podman, RegistryServer, make_base_image
from tests.servers import free_port

pytestmark = pytest.mark.timeout(900)
WHEELHOUSE = Path(os.environ.get("ENVYARD_HOME") or Path.home() / ".envyard") / "wheelhouse"


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    engine = Podman()
    yield engine
    engine.stop()


def test_dockerfile_builds_and_serves(podman: Podman, tmp_path: Path) -> None:
    if not any(WHEELHOUSE.glob("fastapi-*.whl")):
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run tests/setup.sh")
    registry = RegistryServer().start()
    try:
        with Registry(registry.host) as client:
            ref = make_base_image(client, "python", "3.11", Path(sys.base_prefix),
                                  tree=Path(sys.base_prefix))
            digest = client.manifest_digest("python", "3.11")
        done = podman.run("build", "--format", "docker", "--tls-verify=false",
                          "-t", "localhost/envyard:test",
                          "--build-arg", f"BASE_IMAGE={ref.rsplit(':', 1)[0]}",
                          "--build-arg", f"BASE_DIGEST={digest}",
                          "--build-arg", "PIP_OPTIONS=--no-index --find-links /wheels",
                          "-v", f"{WHEELHOUSE}:/wheels:ro", str(REPO), timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        registry.stop()
    config = json.loads(podman.run("image", "inspect", "localhost/envyard:test").stdout)[0]
    assert config["Config"]["User"] == "1000:1000"
    health = config.get("Healthcheck") or {}  # podman reports it beside Config
    assert "/healthz" in " ".join(health.get("Test", []))
    port = free_port()
    started = podman.run("run", "-d", "--network", "host", "-e", f"ENVYARD_PORT={port}",
                         "localhost/envyard:test", "serve", "--host", "127.0.0.1")
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(podman.run("logs", container).stderr[-2000:])
        whoami = podman.run("exec", container, "python", "-c",
                            "import os; print(os.getuid())")
        assert whoami.stdout.strip() == "1000"
        # what build Jobs run, with the Kubernetes and object-storage clients it may need
        worker = podman.run("exec", container, "envyard", "worker", "--help")
        assert worker.returncode == 0 and "VERSION_ID" in worker.stdout
        clients = podman.run("exec", container, "python", "-c",
                             "import kubernetes, boto3, google.cloud.storage")
        assert clients.returncode == 0, clients.stderr
    finally:
        podman.run("rm", "-f", container)
