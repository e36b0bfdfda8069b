"""`envyard pack` (.tar.zst default) vs the `conda-pack` CLI with its defaults, same prefix.

Goal: envyard >= 2x faster. Both are whole processes, alternated, on the demo notebook
environment (~260 MB, ~12,000 files).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from common import ENVYARD, demo_env, exit_now, median, run


def main() -> None:
    conda_pack = shutil.which("conda-pack") or str(Path(sys.executable).with_name("conda-pack"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, prefix = demo_env(work, work / "pkgs")
        ours, base = [], []
        for _ in range(3):
            ours.append(run([ENVYARD, "pack", str(prefix), str(work / "env.tar.zst")])[0])
            base.append(run([conda_pack, "-p", str(prefix), "-o", str(work / "env.tar.gz"),
                             "--force", "-q"])[0])
        a, b = median(ours), median(base)
        zst, gz = (work / "env.tar.zst").stat().st_size, (work / "env.tar.gz").stat().st_size
        print(f"pack: envyard {a:.2f} s ({zst / 1e6:.0f} MB .tar.zst), conda-pack CLI {b:.2f} s "
              f"({gz / 1e6:.0f} MB .tar.gz), speed-up {b / a:.2f}x  (goal >= 2x)")


if __name__ == "__main__":
    main()
    exit_now()
