"""The diff of two pangeo-sized locks (the corpus's pytorch-notebook locks of December
and January: 880 and 885 packages, 250 of them changed) vs the bare comparison of their
name -> version maps, both on locks already read. Goal: the diff < 20 ms."""

from __future__ import annotations

import statistics
import time

from common import exit_now

from envyard.builder.diff import diff_locks
from envyard.builder.lock import read_lock
from tests.corpus_channel import CORPUS

RUNS = 50


def best_of(work: object) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    base = CORPUS / "pangeo-pytorch-notebook"
    a = read_lock(base / "2025-12-18-be821057" / "conda-lock.yml")
    b = read_lock(base / "2026-01-31-2f5532bd" / "conda-lock.yml")
    diff_locks(a, b, "linux-64")  # imports (rattler's version ordering) outside the timing

    def bare() -> object:
        va = {(p.manager, p.name): (p.version, p.build_string)
              for p in a.for_platform("linux-64")}
        vb = {(p.manager, p.name): (p.version, p.build_string)
              for p in b.for_platform("linux-64")}
        return {k for k in va.keys() | vb.keys() if va.get(k) != vb.get(k)}

    ours, baseline = best_of(lambda: diff_locks(a, b, "linux-64")), best_of(bare)
    summary = diff_locks(a, b, "linux-64").as_dict()["summary"]
    print(f"diff of two pytorch-notebook locks ({summary}): {ours * 1000:.1f} ms "
          f"(goal < 20 ms); bare name -> version comparison {baseline * 1000:.2f} ms; "
          f"ratio {ours / baseline:.1f}x")


if __name__ == "__main__":
    main()
    exit_now()
