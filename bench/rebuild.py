"""`envyard build` of an unchanged lock, as a whole process: goal < 1 s.

Baseline in the same run: the first (cold) build of the same lock into a fresh prefix.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import ENVYARD, REPO, channel, exit_now, median, run


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = ["--home", str(work / "home")]
        lock = work / "conda-lock.yml"
        run([ENVYARD, "lock", str(REPO / "envs" / "dask-notebook.yml"), "-c", str(channel()),
             "-o", str(lock), "-q", *home])
        build = [ENVYARD, "build", str(lock), "--prefix", str(work / "env"), "-q", *home]
        first = run(build)[0]
        again = median([run(build)[0] for _ in range(7)])
        print(f"rebuild unchanged lock: {again:.3f} s (goal < 1 s); first build {first:.2f} s, "
              f"ratio {again / first:.3f}x")


if __name__ == "__main__":
    main()
    exit_now()
