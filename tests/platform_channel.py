"""A channel with a second platform: the demo channel (noarch + linux-64) plus an
``osx-arm64`` subdir of real ``.conda`` archives (python, python_abi, pyyaml), so a spec
locks for both platforms and a pack for the one this machine cannot run can be checked.

The osx-arm64 packages are small stand-ins (a shell script for python, a text file with a
prefix placeholder in pyyaml): what is checked is which files a pack holds and which
packages an unpacked prefix records, not that they run here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from envyard.builder.demo.conda_package import (
    PREFIX_PLACEHOLDER,
    PackageFile,
    PackageSpec,
    write_conda,
)
from envyard.builder.lock import Lockfile
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec

SECOND = "osx-arm64"
SPEC = """\
name: cross
platforms: [linux-64, osx-arm64]
dependencies:
  - python=3.11
  - pyyaml
  - toolz
"""


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def second_platform_packages() -> list[PackageSpec]:
    abi = "python_abi 3.11.* *_cp311"
    return [
        PackageSpec("python", "3.11.7", "h_envyard_osx_0_cpython", SECOND, [abi], [
            PackageFile("bin/python3.11", b"#!/bin/sh\necho 'an osx-arm64 python'\n", 0o755),
            PackageFile("bin/python", symlink_to="python3.11"),
            PackageFile("lib/python3.11/os.py", b"# a stand-in\n")]),
        PackageSpec("python_abi", "3.11", "8_cp311", SECOND, [], []),
        PackageSpec("pyyaml", "6.0.4", "py311h_envyard_osx_0", SECOND,
                    ["python >=3.11,<3.12.0a0", abi], [
                        PackageFile("lib/python3.11/site-packages/yaml/__init__.py",
                                    f"PREFIX = '{PREFIX_PLACEHOLDER}'\n".encode(),
                                    prefix_placeholder=PREFIX_PLACEHOLDER)]),
    ]


def index(channel: Path) -> None:
    import rattler.index

    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False,
                                       force=True))


def second_platform_channel(dest: Path, demo: Path) -> Path:
    """``dest``: the demo channel's subdirs (files linked, not copied, where possible)
    plus the osx-arm64 packages, indexed."""
    for sub in ("noarch", "linux-64"):
        shutil.copytree(demo / sub, dest / sub, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns("repodata*", ".*"))
    for spec in second_platform_packages():
        write_conda(spec, dest / SECOND)
    index(dest)
    return dest


def lock_both(channel: Path, cache: Path) -> Lockfile:
    """SPEC locked for linux-64 and osx-arm64 on ``channel``."""
    return lock_env(parse_spec(SPEC), LockOptions(channels=[str(channel)],
                                                  platforms=["linux-64", SECOND],
                                                  cache_dir=cache))
