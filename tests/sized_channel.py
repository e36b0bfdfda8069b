"""An installable channel shaped like a real pangeo environment, for install, pack, image
and GC figures at the size users have (the demo channel has 52 packages).

Every package of the real pytorch-notebook lock (885 on linux-64: names, versions, builds
and the dependency graph, from ``../shared/corpus``) becomes a real ``.conda`` archive. The
lock does not record files, so each package gets a deterministic number of files (1 to
~300, a long tail as conda-forge has: most packages small, a few very large) of 256 B to
64 KB, Python packages under ``site-packages`` and the rest under ``lib/``, with a prefix
placeholder in one small text file in thirty: ~22,000 files, ~250 MB installed, scaled down to fit a
test machine's disk. Virtual-package dependencies (``__glibc``, ``__cuda``) are dropped.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from envyard.builder.demo.channel import index_channel
from envyard.builder.demo.conda_package import (
    PREFIX_PLACEHOLDER,
    PackageFile,
    PackageSpec,
    write_conda,
)
from envyard.builder.lock import LockedPackage, read_lock
from tests.corpus_channel import CORPUS

LOCK = CORPUS / "pangeo-pytorch-notebook" / "2026-01-31-2f5532bd" / "conda-lock.yml"
VERSION = "3"  # bump when the shape changes, so cached channels are rebuilt


def _files(p: LockedPackage, rng: random.Random) -> list[PackageFile]:
    count = min(300, max(1, int(rng.paretovariate(1.1) * 6)))
    python = "python" in p.dependencies and p.name != "python"
    root = f"lib/python3.12/site-packages/{p.name.replace('-', '_')}" if python \
        else f"lib/{p.name}"
    files = []
    for i in range(count):
        size = int(256 * 2 ** rng.uniform(0, 8))  # 256 B .. 64 KB, log-uniform
        half = rng.randbytes(size // 2)  # about as compressible as a shared library
        data = half + bytes(size - len(half))
        if i % 30 == 29:  # one file in thirty names its prefix, as scripts and .pc files do
            # (so small packages have none, as most pure-Python ones have none; the first
            # file of every package did before, 885 of 885 records then differed per prefix)
            files.append(PackageFile(f"{root}/config_{i}.txt",
                                     f"prefix={PREFIX_PLACEHOLDER}\n".encode() + data.hex()
                                     [:min(size, 2048)].encode(),
                                     prefix_placeholder=PREFIX_PLACEHOLDER))
        else:
            files.append(PackageFile(f"{root}/{'mod' if python else 'part'}_{i}.bin", data))
    return files


def _spec(p: LockedPackage, rng: random.Random) -> PackageSpec:
    build = p.url.rsplit("/", 1)[-1].removesuffix(".conda").removesuffix(".tar.bz2") \
        .rsplit("-", 1)[1]
    depends = [f"{n} {s}".strip() for n, s in p.dependencies.items() if not n.startswith("__")]
    return PackageSpec(name=p.name, version=p.version, build=build, subdir="linux-64",
                       depends=depends, files=_files(p, rng))


def sized_channel(out: Path) -> Path:
    """Write the channel under ``out`` once (a complete one is reused); return it."""
    stamp = out / ".envyard-sized-channel.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == VERSION:
        return out
    rng = random.Random(20260131)
    for p in read_lock(LOCK).for_platform("linux-64", "conda"):
        write_conda(_spec(p, rng), out / "linux-64", level=1)
    index_channel(out)
    stamp.write_text(json.dumps({"version": VERSION}))
    return out


def sized_spec() -> str:
    """An environment.yml naming every package of the real lock (what it solves to)."""
    names = sorted({p.name for p in read_lock(LOCK).for_platform("linux-64", "conda")})
    return "dependencies:\n" + "".join(f"  - {n}\n" for n in names)
