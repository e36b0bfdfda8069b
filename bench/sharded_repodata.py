"""Sharded (CEP 16) vs monolithic repodata on a synthetic channel of >= 500,000 records,
served over HTTP on 127.0.0.1: `envyard lock` from a cold repodata cache, whole process,
time to the first solve and peak RSS. Usage: python bench/sharded_repodata.py [RECORDS]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ENVYARD, exit_now, median, run

from envyard.builder.demo.synthetic import record_count, synthetic_channel
from tests.servers import serve_directory
from tests.sharded_channel import write_shards

SPECS = ["python 3.11.*", "pkg00500", "pkg00700", "pkg00699", "pkg00300", "pkg00750"]


def make(records: int, work: Path) -> None:
    mono = synthetic_channel(work / "mono", records=records)
    sharded = work / "sharded"
    shutil.copytree(mono, sharded)
    shards = write_shards(sharded)
    for sub in sharded.iterdir():
        (sub / "repodata.json").unlink()
    print(f"channel: {record_count(mono)} records; {shards} shards")


def main() -> None:
    if sys.argv[1:2] == ["--make"]:
        make(int(sys.argv[2]), Path(sys.argv[3]))
        return
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mono, sharded = work / "mono", work / "sharded"
        # in another process: a child forked from a process holding 500,000 records would
        # count that memory in its own peak RSS
        subprocess.run([sys.executable, __file__, "--make", str(records), str(work)],
                       check=True)
        env = work / "env.yml"
        env.write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in SPECS))
        results = {}
        for name, root in (("monolithic repodata.json", mono), ("sharded", sharded)):
            with serve_directory(root) as (url, requested):
                times, peaks = [], []
                for i in range(3):  # each from a cold cache: the first solve a hub makes
                    seconds, rss = run([ENVYARD, "lock", str(env), "-c", url, "-p",
                                        "linux-64", "-o", str(work / "lock.yml"), "-q",
                                        "--home", str(work / f"home-{name[:4]}-{i}")])
                    times.append(seconds)
                    peaks.append(rss)
                results[name] = (median(times), max(peaks), len(requested) // 3)
        for name, (seconds, rss, requests) in results.items():
            print(f"{name}: first solve {seconds:.2f} s, peak RSS {rss / 1024:.0f} MiB, "
                  f"{requests} requests")
        (m_s, m_rss, _), (s_s, s_rss, _) = results.values()
        print(f"sharded / monolithic: time {s_s / m_s:.2f}x, peak RSS {s_rss / m_rss:.2f}x")


if __name__ == "__main__":
    main()
    exit_now()
