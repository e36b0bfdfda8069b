"""A real dask-gateway-server on 127.0.0.1 for tests and benchmarks: the local process
backend, the simple (password) authenticator, and envyard's ``cluster_options``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers import free_port, stop_process
from tests.waiting import wait_until

GATEWAY = str(Path(sys.executable).with_name("dask-gateway-server"))
#: The gateway's own environment: this Python's dask (its default when none is chosen).
HOST_DASK = str(Path(sys.executable).with_name("dask"))
PASSWORD = "gateway-test-password"

CONFIG = """\
# written by the test: a dask-gateway whose clusters run envyard environments
from envyard.service.gateway import cluster_options

c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{proxy_port}"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.LocalBackend.clusters_directory = {clusters!r}
c.ClusterConfig.scheduler_cmd = [{host_dask!r}, "scheduler"]
c.ClusterConfig.worker_cmd = [{host_dask!r}, "worker"]
c.ClusterConfig.worker_memory = "1 G"
c.Backend.cluster_options = cluster_options({envyard!r}, {token!r})
"""


@dataclass
class DaskGateway:
    """``dask-gateway-server -f <config>`` as a child process, in ``dir``."""

    dir: Path
    envyard: str
    token: str
    api_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """What clients use: the proxy (HTTP API and scheduler traffic, one port)."""
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def log(self) -> Path:
        return self.dir / "gateway.log"

    def start(self) -> DaskGateway:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "clusters").mkdir(exist_ok=True)
        config = self.dir / "dask_gateway_config.py"
        config.write_text(CONFIG.format(
            api_port=self.api_port, proxy_port=self.proxy_port, password=PASSWORD,
            clusters=str(self.dir / "clusters"), host_dask=HOST_DASK,
            envyard=self.envyard, token=self.token))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([GATEWAY, "-f", str(config)], cwd=self.dir,
                                         stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"dask-gateway-server exited with {proc.returncode}: "
                                   f"{self.log.read_text()[-3000:]}")
            return httpx.get(f"{self.address}/api/health", timeout=1).status_code == 200

        wait_until(healthy, timeout=60, what="dask-gateway-server to answer",
                   ignoring=(httpx.TransportError,))
        return self

    def options(self, user: str) -> list[str]:
        """The ``environment`` choices the gateway offers ``user`` (its HTTP API)."""
        resp = httpx.get(f"{self.address}/api/v1/options", auth=(user, PASSWORD), timeout=30)
        resp.raise_for_status()
        fields = {f["field"]: f for f in resp.json()["cluster_options"]}
        return list(fields["environment"]["spec"]["options"])

    def stop(self) -> None:
        stop_process(self.proc, 30)


def client_script(address: str, user: str, body: str) -> str:
    """A script for an environment's own python: a ``Gateway`` as ``user``, then
    ``body`` (which prints one JSON line)."""
    return (f"import json\nfrom dask_gateway import Gateway, BasicAuth\n"
            f"gateway = Gateway({address!r}, auth=BasicAuth({user!r}, {PASSWORD!r}))\n"
            + body)


def run_in(prefix: Path, script: str, timeout: float = 240) -> dict[str, object]:
    """Run ``script`` with ``prefix``'s python (the environment's kernel would); its last
    output line, parsed."""
    done = subprocess.run([str(prefix / "bin" / "python"), "-c", script],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"the script failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
