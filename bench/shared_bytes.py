"""Disk used by 10 versions of one environment, each differing by one package, vs 10
independent copies (`du` of both). Goal: the 10 versions <= 1.2x a single copy.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from common import channel, exit_now

from envyard.builder.install import fingerprint, install_lock
from envyard.builder.layout import Layout
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec

EXTRA = ["toolz", "msgpack-python", "pyyaml", "markupsafe", "tblib", "zict", "locket", "lz4",
         "cloudpickle", "sortedcontainers"]


def du(*paths: Path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", "-c", *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


BASES = {"notebook (dask, pandas, ipykernel)":
         "python=3.11, dask, distributed, numpy, pandas, ipykernel",
         "small (numpy, pandas)": "python=3.11, numpy, pandas"}


def measure(label: str, base: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / "volume")
        prefixes = []
        for extra in EXTRA:
            spec = parse_spec(f"dependencies: [{base}, {extra}]\n")
            lock = lock_env(spec, LockOptions(channels=[str(channel())],
                                              platforms=["linux-64"], cache_dir=layout.cache))
            prefix = layout.prefix(fingerprint(lock, "linux-64"))
            install_lock(lock, prefix=prefix, platform="linux-64", pkgs_dir=layout.pkgs)
            prefixes.append(prefix)
        copy = Path(tmp) / "copy"
        shutil.copytree(prefixes[0], copy, symlinks=True)  # an independent copy: no links
        one = du(copy)
        ten = du(*prefixes)
        print(f"{label}: 10 versions one package apart {ten / 1e6:.0f} MB on disk; one "
              f"independent copy {one / 1e6:.0f} MB, 10 copies {10 * one / 1e6:.0f} MB; "
              f"ratio to one copy {ten / one:.2f}x (goal <= 1.2x)")


def main() -> None:
    for label, base in BASES.items():
        measure(label, base)


if __name__ == "__main__":
    main()
    exit_now()
