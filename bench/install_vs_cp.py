"""Install from a warm package cache vs `cp -al` of the finished prefix: goal <= 2x.

Both make a new prefix of the demo notebook environment (52 packages, ~12,000 files) on
the same filesystem; `cp -al` is the floor for any hardlinking installer.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common import demo_env, exit_now, median

from builder.install import install_lock


def main() -> None:
    import subprocess
    import time

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pkgs = work / "pkgs"
        lock, _ = demo_env(work, pkgs)  # also warms the package cache
        ours, base = [], []
        for i in range(5):
            start = time.perf_counter()
            install_lock(lock, prefix=work / f"env{i}", platform="linux-64", pkgs_dir=pkgs)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(["cp", "-al", str(work / "ref"), str(work / f"cp{i}")], check=True)
            base.append(time.perf_counter() - start)
            shutil.rmtree(work / f"env{i}")
            shutil.rmtree(work / f"cp{i}")
        print(f"install warm cache: envyard {median(ours):.3f} s, cp -al {median(base):.3f} s, "
              f"ratio {median(ours) / median(base):.2f}x  (goal <= 2x)")


if __name__ == "__main__":
    main()
    exit_now()
