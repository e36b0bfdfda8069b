"""Baseline: the least a script can do to solve specs on a channel with rattler.

Usage: python bench/raw_solve.py CHANNEL CACHE [-p PLATFORM]... SPEC...
Solves each platform in turn (default linux-64) on one gateway, with conda-lock's default
virtual packages (CUDA 12.9 and glibc 2.34 when ENVYARD_BENCH_CUDA is set), and prints the
record counts.
"""

import asyncio
import os
import sys

import rattler
from rattler.package.build_string import BuildString

GLIBC = "2.34" if os.environ.get("ENVYARD_BENCH_CUDA") else "2.28"
LINUX = {"__unix": "0", "__linux": "5.10", "__glibc": GLIBC,
         "__cuda": "12.9" if os.environ.get("ENVYARD_BENCH_CUDA") else "11.4"}
VIRTUAL = {"linux-64": {**LINUX, "__archspec": "1"},
           "linux-aarch64": {**LINUX, "__archspec": "1"},
           "osx-64": {"__unix": "0", "__osx": "11.0", "__archspec": "1"},
           "osx-arm64": {"__unix": "0", "__osx": "11.0", "__archspec": "1"}}


async def main() -> list[int]:
    channel, cache, *rest = sys.argv[1:]
    platforms, specs = [], []
    while rest:
        arg = rest.pop(0)
        if arg == "-p":
            platforms.append(rest.pop(0))
        else:
            specs.append(arg)
    gateway = rattler.Gateway(cache_dir=cache)
    counts = []
    for platform in platforms or ["linux-64"]:
        virtual = [rattler.GenericVirtualPackage(rattler.PackageName(n), rattler.Version(v),
                                                 BuildString("0"))
                   for n, v in VIRTUAL[platform].items()]
        records = await rattler.solve(
            sources=[rattler.Channel(channel)], specs=specs, gateway=gateway,
            platforms=[platform, "noarch"], virtual_packages=virtual)
        counts.append(len(records))
    return counts


print(asyncio.run(main()))
sys.stdout.flush()
os._exit(0)  # the same exit envyard uses, so both pay the same shutdown
