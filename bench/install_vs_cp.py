"""Install from a warm package cache vs `cp -al` of the finished prefix: goal <= 2x.

Both make a new prefix of the demo notebook environment (52 packages, ~12,000 files) on
the same filesystem; `cp -al` is the floor for any hardlinking installer. It copies a
reference that shares no inode with the package cache, and no prefix is deleted between
runs: linking or unlinking a cache file changes its ctime, which makes the next install
hash that package again (bench/cache_verify.py measures that case).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import demo_env, exit_now, median

from envyard.builder.install import install_lock


def main() -> None:
    import subprocess
    import time

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pkgs = work / "pkgs"
        lock, ref = demo_env(work, pkgs)  # also warms the package cache
        subprocess.run(["cp", "-a", str(ref), str(work / "ref-copy")], check=True)
        install_lock(lock, prefix=work / "stamped", platform="linux-64", pkgs_dir=pkgs)
        ours, base = [], []
        for i in range(5):
            start = time.perf_counter()
            install_lock(lock, prefix=work / f"env{i}", platform="linux-64", pkgs_dir=pkgs)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(["cp", "-al", str(work / "ref-copy"), str(work / f"cp{i}")],
                           check=True)
            base.append(time.perf_counter() - start)
        print(f"install warm cache: envyard {median(ours):.3f} s, cp -al {median(base):.3f} s, "
              f"ratio {median(ours) / median(base):.2f}x  (goal <= 2x)")


if __name__ == "__main__":
    main()
    exit_now()
