"""A crowd on a real `envyard serve`: 250 connections reading (wrk, a C load generator,
so the generator is not the bottleneck) while 3 builds run, SQLite and PostgreSQL.
Prints p50/p99/max and requests/s of the readers and the count of each status, against
/healthz under the same crowd (the baseline in the same run: no database, never queued).
Goal: no 500, nothing over 10 s (tests/security/test_load.py checks that, without
timings; these are the figures)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from common import channel, exit_now

from tests.servers import Postgres, Service

BUILDS = ["dependencies: [python=3.11, dask, distributed, numpy]\n",
          "dependencies: [python=3.11, pandas, pyyaml]\n",
          "dependencies: [python=3.11, ipykernel, toolz]\n"]
PATHS = ["/api/v1/namespaces", "/api/v1/namespaces/crowd", "/api/v1/environments/crowd/base",
         "/api/v1/environments/crowd/base/versions/1",
         "/api/v1/environments/crowd/base/versions/1/log", "/api/v1/whoami"]
SCRIPT = """
local paths = {%s}
local i = 0
local counts = {}
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
response = function(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
done = function(summary, latency, requests)
  io.write(string.format("p50 %%.0f ms, p99 %%.0f ms, max %%.0f ms, %%.0f requests/s",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests / (summary.duration / 1e6)))
end
"""


def _wrk(url: str, token: str, script: Path, connections: int, seconds: int) -> str:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout",
                          "10s", "-H", f"Authorization: Bearer {token}", "-s", str(script),
                          url], capture_output=True, text=True, timeout=seconds + 60).stdout
    errors = re.search(r"Socket errors: .*|Non-2xx or 3xx responses: \d+", out)
    return out.strip().splitlines()[-1] + (f"; {errors.group(0)}" if errors else "")


def measure(backend: str, url: str, work: Path) -> None:
    svc = Service(work / "volume", channel(), url)
    svc.root.mkdir(parents=True)
    svc.start()
    try:
        token = svc.token("crowd=developer")
        readers = work / "readers.lua"
        readers.write_text(SCRIPT % ", ".join(f'"{p}"' for p in PATHS))
        health = work / "health.lua"
        health.write_text(SCRIPT % '"/healthz"')
        with httpx.Client(base_url=svc.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            c.post("/api/v1/environments/crowd/base/versions",
                   content="dependencies: [python=3.11, toolz]\n")
            while c.get("/api/v1/environments/crowd/base/versions/1").json()["state"] != \
                    "ready":
                time.sleep(0.1)
            idle = _wrk(svc.url, token, health, 10, 3)
            for i, spec in enumerate(BUILDS):
                c.post(f"/api/v1/environments/crowd/b{i}/versions", content=spec)
        crowd = _wrk(svc.url, token, readers, 250, 10)
        beside = _wrk(svc.url, token, health, 250, 5)
        print(f"{backend}, 3 builds running: 250 readers: {crowd}\n"
              f"  /healthz with 250 connections after them: {beside}\n"
              f"  /healthz idle, 10 connections (baseline): {idle}")
    finally:
        svc.stop()


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (tests/setup.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="envyard-bench-") as tmp:
        measure("sqlite", "", Path(tmp) / "sqlite")
        pg = Postgres().start()
        try:
            measure("postgresql", pg.new_database(), Path(tmp) / "pg")
        finally:
            pg.stop()
    exit_now()


if __name__ == "__main__":
    main()
