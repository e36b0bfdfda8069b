"""Solve on a synthetic conda-forge-shaped channel of >= 50,000 records: seconds and peak memory.

Baseline in the same run: the minimal rattler script on the same channel and specs.
Goal: peak memory < 1 GiB.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import ENVYARD, REPO, exit_now, median, run


def main(records: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = work / "ch"
        # in another process: a child forked from one that holds the records would count
        # that memory in its own peak RSS (Linux keeps the peak across exec)
        n = int(subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from envyard.builder.demo.synthetic import record_count, synthetic_channel; "
             "print(record_count(synthetic_channel(Path(sys.argv[1]), "
             "records=int(sys.argv[2]))))", str(big), str(records)],
            check=True, cwd=REPO, capture_output=True, text=True).stdout)
        specs = ["python 3.11.*"] + [f"pkg{i:05d}" for i in (4100, 4000, 3999, 3500, 2900,
                                                               2600, 1800)]
        env = work / "env.yml"
        env.write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in specs))
        ours = [ENVYARD, "lock", str(env), "-c", str(big), "-o", str(work / "l.yml"), "-q",
                "--home", str(work / "home")]
        raw = [sys.executable, str(REPO / "bench" / "raw_solve.py"), big.as_uri(),
               str(work / "rc"), *specs]
        run(ours), run(raw)
        times, rss, raw_times = [], [], []
        for _ in range(5):
            t, m = run(ours)
            times.append(t)
            rss.append(m)
            raw_times.append(run(raw)[0])
        print(f"solve synthetic channel: {n} records, envyard lock {median(times):.2f} s "
              f"(raw rattler {median(raw_times):.2f} s, ratio "
              f"{median(times) / median(raw_times):.2f}x), peak RSS {max(rss) / 1024:.0f} MiB "
              f"(goal < 1024 MiB)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    exit_now()
