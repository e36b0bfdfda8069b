"""The README's main job: the service on its embedded defaults, building ``envs/`` through
its own HTTP API.

The demo channel stands in for conda-forge. The service runs in this process (SQLite, a
local volume, in-process builds); a token is made for namespace ``demo``; the folder is
synced like CI would (a file unchanged since the last run keeps its version); the results
are printed; the service keeps serving until Ctrl-C.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from envyard.builder.demo.channel import demo_channel
from envyard.builder.errors import SpecError
from envyard.service.console import Progress


def _free_port(preferred: int) -> int:
    """``preferred`` unless another process listens there (a port still in TIME_WAIT
    from the last run is free: uvicorn binds with SO_REUSEADDR too), else any free one."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DemoService:
    """uvicorn serving the app on a background thread."""

    def __init__(self, settings: Any) -> None:
        import uvicorn

        from envyard.service.app import create_app

        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=settings.host,
                                                   port=settings.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{settings.host}:{settings.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def run_demo(envs: Path, home: Path, volume: Path, port: int, show: Progress
             ) -> tuple[DemoService, str, list[dict[str, Any]]]:
    """Start the service, sync ``envs`` into namespace ``demo``, wait for every build."""
    from envyard.service.auth import create_token
    from envyard.service.client import Client, plan_sync
    from envyard.service.models import Role
    from envyard.service.settings import load_settings

    files = sorted(p for p in envs.glob("*.y*ml") if p.is_file())
    if not files:
        raise SpecError(f"no environment files (*.yml) in {envs}")
    show.stage("preparing the demo channel (the first run downloads ~55 MB of wheels)")
    channel = demo_channel(home)
    pins = envs / "cluster" / "dask-pins.yml"  # the cluster's pins, if the folder has them
    port_used = _free_port(port)
    # the demo channel stands in for conda-forge as a site's mirror would: locks
    # name conda-forge's URLs, packages come from the mirror
    settings = load_settings(root=volume, mirrors={"conda-forge": [channel.as_uri()]},
                             port=port_used,
                             dask_pins=pins if pins.is_file() else None)
    service = DemoService(settings)
    service.start()
    moved = f" (port {port} is taken by another program)" if port_used != port else ""
    show.stage(f"service running at {service.url}{moved} (SQLite, volume {volume})")
    with service.app.state.db.session(write=True) as s:
        token = create_token(s, name="demo", roles={"demo": Role.admin})
    client = Client(service.url, token, timeout=300)
    layout_envs = volume / "envs" / "demo"
    results: list[dict[str, Any]] = []
    for item in plan_sync(client, "demo", files):  # as `envyard sync`: unchanged files stay
        if item.unchanged_version is not None:
            results.append({"name": item.name, "version": item.unchanged_version,
                            "unchanged": True})
            show.stage(f"demo/{item.name} is unchanged: version {item.unchanged_version}")
            continue
        r = client.request("POST", f"/api/v1/environments/demo/{item.name}/versions",
                           content=item.body, headers={"Content-Type": "text/yaml"})
        results.append({"name": item.name, "version": r.json()["version"]})
        show.stage(f"submitted demo/{item.name} as version {results[-1]['version']}")
    for r in results:
        path = f"/api/v1/environments/demo/{r['name']}/versions/{r['version']}"
        for event, data in client.follow_log(f"demo/{r['name']}", r["version"]):
            if r.get("unchanged"):  # its log was shown when it was built; wait for it
                continue
            if event == "log":
                show.stage(f"demo/{r['name']}: {data.split(' ', 1)[1]}")
        detail = client.get(path)
        prefix = layout_envs / r["name"] / "current"
        probe = ("import dask; print(dask.__version__)"
                 if any(p["name"] == "dask" for p in detail["packages"])
                 else "import sys; print(sys.prefix)")
        dask = detail.get("dask") or {}
        r.update(state=detail["state"], error=detail["error"], packages=len(detail["packages"]),
                 dask=("matches the cluster's pins" if dask.get("ok") else "differs from the "
                       "cluster's pins (warn)") if dask.get("applies") else None,
                 prefix=str(prefix), lock=f"{service.url}{path}/lock",
                 pack=f"{service.url}{path}/pack", log=f"{service.url}{path}/log",
                 **{"try": f"{prefix}/bin/python -c '{probe}'"})
    return service, token, results
