"""A channel with a CUDA-dependent package, as pytorch's are built: ``torchish`` 2.0 as a
``cuda`` build (build number 1, needs ``__cuda >=12``) and a ``cpu`` build (0, needs
nothing). A solver prefers the cuda build wherever the assumed system has CUDA 12, and
takes the cpu one elsewhere; each installs a file naming its build."""

from __future__ import annotations

from pathlib import Path

from envyard.builder.demo.channel import index_channel
from envyard.builder.demo.conda_package import PackageFile, PackageSpec, write_conda

BUILDS = {"cuda": ("cuda_1", 1, ["__cuda >=12"]), "cpu": ("cpu_0", 0, [])}


def cuda_channel(dest: Path, subdirs: tuple[str, ...] = ("linux-64",)) -> Path:
    """Write and index the channel at ``dest``."""
    for subdir in subdirs:
        for build, number, depends in BUILDS.values():
            write_conda(PackageSpec(
                "torchish", "2.0", build, subdir, depends,
                [PackageFile("share/torchish/build.txt", build.encode())],
                build_number=number), dest / subdir)
    index_channel(dest)
    return dest


def torchish_build(lock_text_or_packages: object) -> str:
    """``cuda`` or ``cpu``: which torchish build a lock (its text) holds."""
    text = str(lock_text_or_packages)
    found = {kind for kind, (build, _, _) in BUILDS.items() if f"torchish-2.0-{build}" in text}
    assert len(found) == 1, found
    return found.pop()
