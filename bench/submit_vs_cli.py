"""End to end: submit -> ready through the service vs `envyard lock` + `envyard build --pack`.

Same file (the demo notebook environment), same channel, cold package caches on both
sides, both including the pack. Goal: service overhead <= 1.2x.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from common import ENVYARD, REPO, channel, exit_now, run

from tests.servers import Service

SPEC = REPO / "envs" / "dask-notebook.yml"


def through_service(work: Path) -> float:
    (work / "volume").mkdir(parents=True)
    svc = Service(work / "volume", channel()).start()
    token = svc.token("bench=developer")
    try:
        with httpx.Client(base_url=svc.url, timeout=300,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            start = time.perf_counter()
            number = c.post("/api/v1/environments/bench/nb/versions",
                            content=SPEC.read_text()).json()["version"]
            with c.stream("GET", f"/api/v1/environments/bench/nb/versions/{number}/log",
                          params={"follow": "true"}) as resp:
                for _ in resp.iter_lines():
                    pass
            seconds = time.perf_counter() - start
            state = c.get(f"/api/v1/environments/bench/nb/versions/{number}").json()["state"]
            assert state == "ready", state
            return seconds
    finally:
        svc.stop()


def through_cli(work: Path) -> float:
    home = ["--home", str(work / "home")]
    lock = work / "conda-lock.yml"
    t1 = run([ENVYARD, "lock", str(SPEC), "-c", str(channel()), "-o", str(lock), "-q", *home])[0]
    t2 = run([ENVYARD, "build", str(lock), "--prefix", str(work / "env"), "--pack",
              str(work / "env.tar.zst"), "-q", *home])[0]
    return t1 + t2


def main() -> None:
    service, cli = [], []
    for i in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            service.append(through_service(Path(tmp) / f"s{i}"))
            cli.append(through_cli(Path(tmp) / f"c{i}"))
    s, c = sorted(service)[1], sorted(cli)[1]
    print(f"submit -> ready: service {s:.2f} s, envyard lock + build --pack {c:.2f} s, "
          f"ratio {s / c:.2f}x  (goal <= 1.2x)")


if __name__ == "__main__":
    main()
    exit_now()
