"""Install from a warm package cache vs `cp -al` of the finished prefix: goal <= 2x.

Both make a new prefix of the demo notebook environment (52 packages, ~12,000 files) on
the same filesystem; `cp -al` is the floor for any hardlinking installer.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common import REPO, channel, exit_now, median

from builder.install import install_lock
from builder.locker import LockOptions, lock_env
from builder.spec import read_spec


def main() -> None:
    import subprocess
    import time

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lock = lock_env(read_spec(REPO / "envs" / "dask-notebook.yml"),
                        LockOptions(channels=[str(channel())], platforms=["linux-64"],
                                    cache_dir=work / "cache"))
        pkgs = work / "pkgs"
        install_lock(lock, prefix=work / "ref", platform="linux-64", pkgs_dir=pkgs)  # warm
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
