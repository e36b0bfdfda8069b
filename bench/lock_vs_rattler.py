"""`envyard lock` vs a minimal rattler solve script, both as whole processes, alternated.

Two cases: the demo notebook environment (52 packages; fixed costs dominate) and a spec on a
synthetic 50,000-record channel (the solve dominates). Goal: envyard <= 1.3x the baseline.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import ENVYARD, REPO, channel, exit_now, median, report, run

from builder.demo.synthetic import record_count, synthetic_channel

RUNS = 9


def compare(name: str, env_file: Path, chan: Path, specs: list[str], work: Path) -> None:
    raw = [sys.executable, str(REPO / "bench" / "raw_solve.py"), chan.as_uri(),
           str(work / "raw-cache"), *specs]
    ours = [ENVYARD, "lock", str(env_file), "-c", str(chan), "-o", str(work / "lock.yml"), "-q",
            "--home", str(work / "home")]
    run(raw), run(ours)  # warm the repodata caches and the OS file cache
    t_raw, t_ours = [], []
    for _ in range(RUNS):
        t_raw.append(run(raw)[0])
        t_ours.append(run(ours)[0])
    report(name, median(t_ours), median(t_raw), "raw rattler script", "<= 1.3x")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        compare("lock demo env (52 pkgs)", REPO / "envs" / "dask-notebook.yml", channel(),
                ["python 3.11.*", "dask 2025.12.0.*", "distributed 2025.12.0.*", "numpy",
                 "pandas", "ipykernel"], work)
        big = synthetic_channel(work / "synthetic", records=50_000)
        specs = ["python 3.11.*", "pkg01500", "pkg02000", "pkg01999", "pkg00900", "pkg02050"]
        env = work / "big.yml"
        env.write_text("dependencies:\n" + "".join(f"  - {s}\n" for s in specs))
        compare(f"lock synthetic ({record_count(big)} records)", env, big, specs, work)


if __name__ == "__main__":
    main()
    exit_now()
