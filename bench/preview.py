"""A preview through the service vs `envyard lock` of the same spec on the same channel.

The demo notebook environment (52 packages) and a pangeo-sized one (885 packages,
tests/sized_channel.py). The preview is the whole round trip of ``POST …/preview`` (the
upload checked, the solve, the diff, the Dask and quota checks, the row stored); the
baseline the whole `envyard lock` process (solve and write the lock). Each is run five
times alternately on a warm repodata cache; the medians are compared. A second preview
figure is the minimal-change one (solved on a current version's lock). Goal: <= 1.2x.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import ENVYARD, HOME, REPO, channel, exit_now, run

from tests.servers import Service
from tests.sized_channel import sized_channel, sized_spec

RUNS = 5


def _cli_lock(work: Path, spec: Path, chan: Path) -> float:
    return run([ENVYARD, "lock", str(spec), "-c", str(chan), "-o", str(work / "lock.yml"),
                "-q", "--home", str(work / "home"), "--platform", "linux-64"])[0]


def _preview(c: httpx.Client, env: str, spec: str) -> float:
    start = time.perf_counter()
    r = c.post(f"/api/v1/environments/{env}/preview", content=spec)
    seconds = time.perf_counter() - start
    assert r.status_code == 200, r.text
    return seconds


def compare(name: str, spec: str, chan: Path) -> None:
    with tempfile.TemporaryDirectory(dir=HOME) as tmp:
        work = Path(tmp)
        (work / "volume").mkdir()
        (work / "spec.yml").write_text(spec)
        svc = Service(work / "volume", chan).start()
        try:
            token = svc.token("bench=developer")
            with httpx.Client(base_url=svc.url, timeout=600,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                _preview(c, "bench/new", spec), _cli_lock(work, work / "spec.yml", chan)
                previews, locks = [], []
                for _ in range(RUNS):  # alternate, so drift hits both alike
                    previews.append(_preview(c, "bench/new", spec))
                    locks.append(_cli_lock(work, work / "spec.yml", chan))
                v = c.post("/api/v1/environments/bench/base/versions", content=spec).json()
                while c.get(f"/api/v1/environments/bench/base/versions/{v['version']}"
                            ).json()["state"] not in ("ready", "failed"):
                    time.sleep(0.5)
                minimal = [_preview(c, "bench/base", spec) for _ in range(RUNS)]
        finally:
            svc.stop()
    p, lk, m = (statistics.median(x) for x in (previews, locks, minimal))
    print(f"preview, {name}: {p:.2f} s, envyard lock {lk:.2f} s, ratio {p / lk:.2f}x "
          f"(goal <= 1.2x); on a current lock (minimal change) {m:.2f} s, "
          f"ratio {m / lk:.2f}x")


def main() -> None:
    compare("demo env (52 pkgs)", (REPO / "envs" / "dask-notebook.yml").read_text(), channel())
    compare("pangeo-sized (885 pkgs)", sized_spec(), sized_channel(HOME / "sized-channel"))


if __name__ == "__main__":
    main()
    exit_now()
