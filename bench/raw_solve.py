"""Baseline: the least a script can do to solve specs on a channel with rattler.

Usage: python bench/raw_solve.py CHANNEL CACHE SPEC...  (prints the record count)
"""

import asyncio
import os
import sys

import rattler


async def main() -> int:
    channel, cache, *specs = sys.argv[1:]
    records = await rattler.solve(
        sources=[rattler.Channel(channel)], specs=specs,
        gateway=rattler.Gateway(cache_dir=cache), platforms=["linux-64", "noarch"])
    return len(records)


print(asyncio.run(main()))
sys.stdout.flush()
os._exit(0)  # the same exit envyard uses, so both pay the same shutdown
