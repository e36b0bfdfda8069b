"""Package search over a synthetic channel of 100,000 records (linux-64 and noarch): the
solver benchmarks' channel (many versions and builds of ~4,000 names), and one as wide
as it can be (100,000 names of one record each: the substring scan's worst case).

Warm p50/p99 of `GET /api/v1/packages?search=…` against a real `envyard serve` (its
channel index already read: the first search reads it, timed apart), over patterns that
match by prefix, inside names, or nothing; the baseline in the same run is a raw rattler
call on a warm gateway, `Gateway.names` of the same channel and subdirs (only the names,
nothing matched). Goal: warm p99 < 100 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import exit_now

from envyard.builder.demo.synthetic import record_count, synthetic_channel
from tests.servers import Service

RECORDS, REQUESTS = 100_000, 300
PATTERNS = ["pkg0", "pkg012", "pkg0420", "123", "python", "_abi", "zzz", "PKG03",
            "lib0", "lib4a", "ff"]


def quantile(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100)[q - 1] * 1000


def wide_channel(dest: Path, records: int) -> Path:
    """``records`` distinct names, one noarch record each (empty linux-64)."""
    import hashlib
    import json

    packages = {}
    for i in range(records):
        name = f"lib{hashlib.sha256(str(i).encode()).hexdigest()[:10]}"
        packages[f"{name}-1.0-0.conda"] = {
            "name": name, "version": "1.0", "build": "0", "build_number": 0, "depends": [],
            "subdir": "noarch", "md5": "0" * 32, "sha256": "0" * 64, "size": 1}
    for subdir in ("noarch", "linux-64"):
        (dest / subdir).mkdir(parents=True)
        (dest / subdir / "repodata.json").write_text(json.dumps({
            "info": {"subdir": subdir}, "packages": {},
            "packages.conda": packages if subdir == "noarch" else {}}))
    return dest


def raw_names(channel: Path, cache: Path) -> tuple[int, list[float]]:
    import rattler

    async def run() -> tuple[int, list[float]]:
        gateway = rattler.Gateway(cache_dir=cache)
        source = [rattler.Channel(channel.as_uri())]
        count = len(await gateway.names(source, ["linux-64", "noarch"]))  # warm
        times = []
        for _ in range(REQUESTS):
            start = time.perf_counter()
            names = await gateway.names(source, ["linux-64", "noarch"])
            [n.normalized for n in names]
            times.append(time.perf_counter() - start)
        return count, times

    return asyncio.run(run())


def measure(label: str, channel: Path, work: Path) -> None:
    count = record_count(channel)
    (work / "volume").mkdir()
    svc = Service(work / "volume", channel, extra_env={"ENVYARD_PLATFORM": "linux-64"})
    svc.start()
    try:
        token = svc.token("team=viewer")
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {token}"},
                          timeout=120) as c:
            start = time.perf_counter()
            while (first := c.get("/api/v1/packages", params={"search": "pkg"})
                   ).status_code == 503:  # still reading the channel: retry, as a picker does
                time.sleep(0.2)
            cold = time.perf_counter() - start
            first.raise_for_status()
            times = []
            for i in range(REQUESTS):
                pattern = PATTERNS[i % len(PATTERNS)]
                start = time.perf_counter()
                r = c.get("/api/v1/packages", params={"search": pattern})
                times.append(time.perf_counter() - start)
                r.raise_for_status()
    finally:
        svc.stop()
    names, base = raw_names(channel, work / "raw-cache")
    print(f"package search, {label} ({count:,} records, {names:,} names): first search "
          f"(reads the channel) {cold:.2f} s; warm p50 {quantile(times, 50):.1f} ms, p99 "
          f"{quantile(times, 99):.1f} ms (goal < 100 ms); raw rattler Gateway.names (warm) "
          f"p50 {quantile(base, 50):.2f} ms, p99 {quantile(base, 99):.2f} ms; p99 ratio "
          f"{quantile(times, 99) / quantile(base, 99):.1f}x")


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else RECORDS
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "a").mkdir(), (work / "b").mkdir()
        measure("solver-benchmark channel", synthetic_channel(
            work / "channel", records=records), work / "a")
        measure("wide channel", wide_channel(work / "wide", records), work / "b")


if __name__ == "__main__":
    main()
    exit_now()
