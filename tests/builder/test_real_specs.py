"""Real conda-forge specs lock offline against conda-forge's own metadata (the channel
rebuilt from the corpus locks), as conda-lock locked them."""

from __future__ import annotations

from pathlib import Path

import pytest

from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec, read_spec
from envyard.builder.virtual import load_virtual_packages
from tests.conftest import CORPUS

BASE = CORPUS / "pangeo-base-notebook" / "2026-01-31-2f5532bd"
PYTORCH = CORPUS / "pangeo-pytorch-notebook" / "2026-01-31-2f5532bd"


def _versions(lock, platform: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {p.name: p.version for p in lock.for_platform(platform)}


def test_the_pangeo_spec_locks_as_conda_lock_locked_it(corpus_channel: Path,
                                                       tmp_path: Path) -> None:
    """All four platforms of the real lock, solved in one `lock_env`: the same packages at
    the same versions (a package or two may differ where conda-lock saw newer metadata)."""
    from envyard.builder.lock import read_lock

    real = read_lock(BASE / "conda-lock.yml")
    ours = lock_env(read_spec(BASE / "environment.yml"),
                    LockOptions(channels=[str(corpus_channel)], platforms=real.metadata.platforms,
                                cache_dir=tmp_path / "cache"))
    assert ours.metadata.platforms == real.metadata.platforms
    for platform in real.metadata.platforms:
        theirs, mine = _versions(real, platform), _versions(ours, platform)
        same = sum(mine.get(name) == version for name, version in theirs.items())
        assert same >= 0.99 * len(theirs), platform
        assert len(mine) <= len(theirs) + 2, platform
    assert "_openmp_mutex" in _versions(ours, "linux-64")


def test_the_pytorch_spec_with_name_version_build_locks(corpus_channel: Path,
                                                        tmp_path: Path) -> None:
    """`pytorch>=2.7.0=cuda12*`, as the real spec writes it, on a CUDA 12.9 system."""
    text = (PYTORCH / "environment.yml").read_text()
    system = tmp_path / "virtual.yaml"
    system.write_text("subdirs:\n  linux-64:\n    packages: {__unix: '0', __linux: '5.10', "
                      "__archspec: '1 x86_64', __glibc: '2.34', __cuda: '12.9'}\n")
    lock = lock_env(parse_spec(text), LockOptions(
        channels=[str(corpus_channel)], platforms=["linux-64"], cache_dir=tmp_path / "cache",
        virtual=load_virtual_packages(system)))
    files = {p.name: p.filename for p in lock.package}
    assert files["pytorch"].split("-")[-1].startswith("cuda12")
    assert files["torchvision"].split("-")[-1].startswith("cuda12")
    assert len(files) > 400


def test_a_pip_section_on_a_real_conda_forge_environment(corpus_channel: Path,
                                                         pypi_index: str,
                                                         tmp_path: Path) -> None:
    """The issue's failure: every pip: section on conda-forge failed on `_openmp_mutex`."""
    spec = parse_spec("dependencies:\n  - python=3.12\n  - numpy\n  - scipy\n  - pip\n"
                      "  - pip:\n      - python-slugify==9.2.0\n")
    lock = lock_env(spec, LockOptions(channels=[str(corpus_channel)], platforms=["linux-64"],
                                      cache_dir=tmp_path / "cache", pip_index=pypi_index))
    conda = {p.name for p in lock.package if p.manager == "conda"}
    pip = {p.name for p in lock.package if p.manager == "pip"}
    assert {"_openmp_mutex", "libgcc", "numpy", "scipy"} <= conda
    assert pip == {"python-slugify", "text-unidecode"}


@pytest.mark.slow
def test_a_pangeo_sized_environment_installs(tmp_path_factory: pytest.TempPathFactory,
                                             tmp_path: Path) -> None:
    """885 packages shaped like the real pytorch-notebook lock lock, install (their text
    files relocated to the prefix) and are reused as one environment."""
    from envyard.builder.install import install_lock
    from tests.sized_channel import sized_channel, sized_spec

    channel = sized_channel(tmp_path_factory.mktemp("sized-channel"))
    lock = lock_env(parse_spec(sized_spec()), LockOptions(
        channels=[str(channel)], platforms=["linux-64"], cache_dir=tmp_path / "cache"))
    assert len(lock.package) == 885
    prefix = tmp_path / "env"
    result = install_lock(lock, prefix=prefix, platform="linux-64", pkgs_dir=tmp_path / "pkgs")
    assert result.conda_packages == 885 and not result.reused
    assert len(list((prefix / "conda-meta").glob("*.json"))) == 885
    texts = list(prefix.glob("lib/*/config_*.txt"))
    assert len(texts) > 50  # one file in thirty of the larger packages names its prefix
    assert all(t.read_text().startswith(f"prefix={prefix}\n") for t in texts)
    again = install_lock(lock, prefix=prefix, platform="linux-64", pkgs_dir=tmp_path / "pkgs")
    assert again.reused
