"""A 64 MB hostile lock (millions of tiny nodes) pushed to a real `envyard serve` while
/healthz is polled every 10 ms. Prints /healthz p99 during the push against /healthz p99
of the idle service (the baseline, same run), and the service's peak RSS during the push
over its RSS before. Goals: /healthz p99 < 100 ms, push peak RSS < 512 MiB; and a real
4-platform lock (the corpus's largest, x4 for 800 packages) still parses fast."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from common import REPO, channel, exit_now

from envyard.builder.lock import parse_lock
from tests.servers import Service

SIZE = 64 << 20


def _hostile(path: Path) -> bytes:
    head = b"version: 1\nmetadata: {platforms: [linux-64]}\npackage:\n"
    path.write_bytes(head + b"- a\n" * ((SIZE - len(head)) // 4))
    return path.read_bytes()


def _poll(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            start = time.perf_counter()
            c.get(f"{url}/healthz")
            out.append(time.perf_counter() - start)
            time.sleep(0.01)


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] * 1000


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-") as tmp:
        svc = Service(Path(tmp) / "volume", channel())
        svc.root.mkdir()
        svc.start()
        try:
            body = _hostile(Path(tmp) / "hostile.yml")
            token = svc.token("bench=developer")
            idle: list[float] = []
            stop = threading.Event()
            t = threading.Thread(target=_poll, args=(svc.url, stop, idle))
            t.start()
            time.sleep(2)
            stop.set()
            t.join()
            assert svc.proc is not None
            proc = psutil.Process(svc.proc.pid)
            before, peak = proc.memory_info().rss, 0
            during: list[float] = []
            stop = threading.Event()
            t = threading.Thread(target=_poll, args=(svc.url, stop, during))
            t.start()
            done = threading.Event()

            def sample() -> None:  # the service and its upload checker, together
                nonlocal peak
                while not done.is_set():
                    rss = proc.memory_info().rss
                    for child in proc.children(recursive=True):
                        try:
                            if "envyard" not in " ".join(child.cmdline()) and \
                                    "multiprocessing" in " ".join(child.cmdline()):
                                rss += child.memory_info().rss
                        except psutil.Error:
                            pass
                    peak = max(peak, rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            start = time.perf_counter()
            r = httpx.post(f"{svc.url}/api/v1/environments/bench/env/locks", content=body,
                           headers={"Authorization": f"Bearer {token}"}, timeout=300)
            push = time.perf_counter() - start
            done.set()
            stop.set()
            t.join()
            sampler.join()
            print(f"64 MB hostile push: answered {r.status_code} in {push:.2f} s; /healthz "
                  f"p99 {_p99(during):.1f} ms during it ({len(during)} polls) vs "
                  f"{_p99(idle):.1f} ms idle (goal < 100 ms); peak RSS of the service and "
                  f"its checker {peak / 2**20:.0f} MiB, {before / 2**20:.0f} MiB before "
                  "(goal < 512 MiB)")
        finally:
            svc.stop()
    real = sorted((REPO.parent / "shared" / "corpus").glob("*/*/conda-lock.yml"),
                  key=lambda p: p.stat().st_size)[-1].read_bytes()
    big = real + b"".join(real.split(b"\npackage:\n", 1)[1] for _ in range(3))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        parse_lock(big)
        times.append(time.perf_counter() - start)
    print(f"a real lock x4 ({len(big) / 1e6:.1f} MB, {len(parse_lock(big).package)} "
          f"packages) parses in {statistics.median(times):.2f} s")
    exit_now()


if __name__ == "__main__":
    main()
