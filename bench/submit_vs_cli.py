"""End to end: submit -> ready through the service vs `envyard lock` + `envyard build --pack`.

The demo notebook environment (52 packages) and a pangeo-sized one (885 packages,
tests/sized_channel.py); same file, same channel, cold package caches on both sides, both
including the pack. Prints the share of the time each stage took (the version's own timestamps and
timings). Goal: <= 1.05x.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from common import ENVYARD, HOME, REPO, channel, exit_now, run

from tests.servers import Service
from tests.sized_channel import sized_channel, sized_spec


def through_service(work: Path, spec: str, chan: Path) -> tuple[float, dict[str, float]]:
    """The POST's round trip plus the service's own created -> finished time (the
    version's timestamps): polling every 20 ms, as this benchmark did, took the GIL from
    the build it measured; a user's client asks far less often."""
    (work / "volume").mkdir(parents=True)
    svc = Service(work / "volume", chan).start()
    token = svc.token("bench=developer")
    try:
        with httpx.Client(base_url=svc.url, timeout=600,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            start = time.perf_counter()
            number = c.post("/api/v1/environments/bench/nb/versions",
                            content=spec).json()["version"]
            posted = time.perf_counter() - start
            while True:
                v = c.get(f"/api/v1/environments/bench/nb/versions/{number}").json()
                if v["state"] in ("ready", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            assert v["state"] == "ready", v["error"]
            created, started, finished = (dt.datetime.fromisoformat(v[k]) for k in (
                "created_at", "started_at", "finished_at"))
            built = (finished - created).total_seconds()
            shares = {"queued": (started - created).total_seconds(),
                      **{stage: float(t) for stage, t in v["timings"].items()}}
            shares["publish and the rest"] = built - sum(shares.values())
            return posted + built, shares
    finally:
        svc.stop()


def through_cli(work: Path, spec: str, chan: Path) -> float:
    home = ["--home", str(work / "home")]
    env, lock = work / "environment.yml", work / "conda-lock.yml"
    work.mkdir(parents=True)
    env.write_text(spec)
    t1 = run([ENVYARD, "lock", str(env), "-c", str(chan), "-o", str(lock), "-q", *home])[0]
    t2 = run([ENVYARD, "build", str(lock), "--prefix", str(work / "env"), "--pack",
              str(work / "env.tar.zst"), "-q", *home])[0]
    return t1 + t2


def compare(name: str, spec: str, chan: Path) -> None:
    service, cli, shares = [], [], []
    for i in range(4):
        with tempfile.TemporaryDirectory(dir=HOME) as tmp:
            if i % 2:  # alternate: the first of a pair writes back the other's pages
                cli.append(through_cli(Path(tmp) / f"c{i}", spec, chan))
            seconds, share = through_service(Path(tmp) / f"s{i}", spec, chan)
            service.append(seconds)
            shares.append(share)
            if not i % 2:
                cli.append(through_cli(Path(tmp) / f"c{i}", spec, chan))
            subprocess.run(["sync"], check=True)
    s, c = sorted(service)[1], sorted(cli)[1]  # the lower median of four
    share = shares[service.index(s)]
    print(f"submit -> ready, {name}: service {s:.2f} s, envyard lock + build --pack "
          f"{c:.2f} s, ratio {s / c:.2f}x  (goal <= 1.05x)")
    print("  " + ", ".join(f"{state} {t / s:.0%}" for state, t in share.items()))


def main() -> None:
    compare("demo env (52 pkgs)", (REPO / "envs" / "dask-notebook.yml").read_text(), channel())
    compare("pangeo-sized (885 pkgs)", sized_spec(), sized_channel(HOME / "sized-channel"))


if __name__ == "__main__":
    main()
    exit_now()
