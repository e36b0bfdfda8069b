"""conda-pack archives: they unpack elsewhere and run after conda-unpack."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from envyard.builder.errors import PackError
from envyard.builder.install import install_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.pack import pack_prefix
from envyard.builder.spec import parse_spec


@pytest.fixture(scope="module")
def small_env(channel: Path, cache_dir: Path, pkgs_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = parse_spec("dependencies: [python 3.11.*, dask, distributed, numpy, pyyaml]\n")
    lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=cache_dir))
    prefix = tmp_path_factory.mktemp("packenv") / "env"
    install_lock(lock, prefix=prefix, platform="linux-64", pkgs_dir=pkgs_dir)
    return prefix


def _extract(archive: Path, dest: Path) -> None:
    dest.mkdir()
    if archive.name.endswith(".tar.zst"):
        with archive.open("rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as raw, \
                tarfile.open(fileobj=raw, mode="r|") as tar:
            tar.extractall(dest, filter="tar")
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="tar")


@pytest.mark.parametrize("suffix", [".tar.zst", ".tar.gz"])
def test_pack_unpacks_elsewhere_and_runs(small_env: Path, tmp_path: Path, suffix: str) -> None:
    result = pack_prefix(small_env, tmp_path / f"env{suffix}")
    assert result.bytes > 1_000_000
    moved = tmp_path / "somewhere" / "else"
    moved.parent.mkdir()
    _extract(result.archive, moved)
    env = {"PATH": f"{moved}/bin:/usr/bin:/bin"}
    unpack = subprocess.run([str(moved / "bin" / "conda-unpack")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert unpack.returncode == 0, unpack.stderr
    done = subprocess.run([str(moved / "bin" / "python"), "-c",
                           "import sys, dask, distributed, numpy, yaml; print(sys.prefix)"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(moved)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _members(archive: Path) -> dict[str, tuple[object, ...]]:
    """Every member as a user unpacking it sees it: kind, mode, time, link, content (a
    hard link is the file it names: which of two links is stored first is arbitrary)."""
    out: dict[str, tuple[object, ...]] = {}
    with tarfile.open(archive) as tar:
        for m in tar:
            if m.isreg() or m.islnk():
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                out[m.name] = (tarfile.REGTYPE, m.mode, int(m.mtime), "", len(data),
                               hashlib.sha256(data).hexdigest())
            else:
                out[m.name] = (m.type, m.mode, int(m.mtime), m.linkname, m.size, "")
    return out


def test_our_tar_is_conda_packs_tar(small_env: Path, tmp_path: Path) -> None:
    """The archive is written by us (conda-pack's tarfile spent ~0.3 ms a member) but must
    hold exactly what conda-pack's own writer puts in it, member for member."""
    import conda_pack

    started = int(time.time())
    ours = pack_prefix(small_env, tmp_path / "ours.tar").archive
    theirs = tmp_path / "theirs.tar"
    conda_pack.pack(prefix=str(small_env), output=str(theirs), format="tar", verbose=False)
    a, b = _members(ours), _members(theirs)
    assert len(a) > 1000 and a.keys() == b.keys()
    for n in [n for n in b if b[n][2] >= started]:  # scripts conda-pack writes as it packs
        a[n], b[n] = a[n][:2] + a[n][3:], b[n][:2] + b[n][3:]
    assert {n: (a[n], b[n]) for n in a if a[n] != b[n]} == {}
    assert any(m[0] == tarfile.SYMTYPE for m in a.values())  # links stay links


def test_unknown_format(small_env: Path, tmp_path: Path) -> None:
    with pytest.raises(PackError, match="unknown archive type"):
        pack_prefix(small_env, tmp_path / "env.rar")


def test_not_an_env(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="not a conda environment"):
        pack_prefix(tmp_path, tmp_path / "x.tar.zst")
    assert not (tmp_path / "x.tar.zst").exists()
