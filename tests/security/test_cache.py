"""The shared package cache, tampered with: what a new prefix links is what the package
holds, and a changed archive is fetched again instead of failing every build for ever."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from envyard.builder.install import install_lock
from envyard.builder.lock import Lockfile
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.pkgcache import extracted_dir
from envyard.builder.spec import parse_spec


@pytest.fixture
def cache(channel: Path, tmp_path: Path) -> tuple[Lockfile, Path]:
    """A lock of python + toolz + pyyaml and a package cache it was installed from."""
    lock = lock_env(parse_spec("dependencies: [python=3.11, toolz, pyyaml]\n"),
                    LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                cache_dir=tmp_path / "repodata"))
    pkgs = tmp_path / "pkgs"
    install_lock(lock, prefix=tmp_path / "first", platform="linux-64", pkgs_dir=pkgs)
    return lock, pkgs


def _rewrite_in_place(path: Path, change: bytes, to: bytes) -> None:
    """Change bytes without changing the size or the mtime (what a careful attacker does)."""
    st = path.stat()
    data = path.read_bytes()
    assert change in data and len(change) == len(to)
    with path.open("r+b") as f:
        f.write(data.replace(change, to, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_changed_extracted_file_never_reaches_a_new_prefix(
        cache: tuple[Lockfile, Path], tmp_path: Path) -> None:
    """rattler reuses extracted packages without looking inside (the first half of this
    test shows it: the change is visible through the hardlink in the first prefix)."""
    lock, pkgs = cache
    toolz = next(pkgs.glob("toolz-*.conda"))
    tampered = extracted_dir(toolz) / "site-packages" / "toolz" / "__init__.py"
    _rewrite_in_place(tampered, b"import", b"IMPORT")
    first = tmp_path / "first" / "lib" / "python3.11" / "site-packages" / "toolz"
    assert b"IMPORT" in (first / "__init__.py").read_bytes()  # hardlinked: already shared
    install_lock(lock, prefix=tmp_path / "second", platform="linux-64", pkgs_dir=pkgs)
    second = tmp_path / "second" / "lib" / "python3.11" / "site-packages" / "toolz"
    assert b"IMPORT" not in (second / "__init__.py").read_bytes()
    out = subprocess.run([str(tmp_path / "second" / "bin" / "python"), "-c",
                          "import toolz; print(toolz.__version__)"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr


def test_an_archive_changed_in_place_is_fetched_again(cache: tuple[Lockfile, Path],
                                                      tmp_path: Path) -> None:
    """Before: its sidecar (size, mtime) still matched, so every later build that had to
    extract it failed."""
    lock, pkgs = cache
    archive = next(pkgs.glob("pyyaml-*.conda"))
    data = archive.read_bytes()
    middle = data[len(data) // 2:len(data) // 2 + 8]
    _rewrite_in_place(archive, middle, bytes(b ^ 0xFF for b in middle))
    import shutil

    shutil.rmtree(extracted_dir(archive))  # so the next build must extract it
    install_lock(lock, prefix=tmp_path / "third", platform="linux-64", pkgs_dir=pkgs)
    out = subprocess.run([str(tmp_path / "third" / "bin" / "python"), "-c",
                          "import yaml; print(yaml.safe_load('a: 1'))"], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "{'a': 1}", out.stderr
    assert archive.read_bytes() == data  # the cache holds the real package again


def test_an_unchecked_stale_stamp_still_gives_a_good_prefix(cache: tuple[Lockfile, Path],
                                                            tmp_path: Path) -> None:
    """A stamp that no longer matches (a GC unlinked a prefix, say) costs a hash, not a
    re-extraction: the package is verified and linked as it is."""
    lock, pkgs = cache
    toolz = next(pkgs.glob("toolz-*.conda"))
    package = extracted_dir(toolz)
    inode = (package / "site-packages" / "toolz" / "__init__.py").stat().st_ino
    (package.parent / f".{package.name}.envyard-stamp").write_text("{}")
    install_lock(lock, prefix=tmp_path / "fourth", platform="linux-64", pkgs_dir=pkgs)
    linked = tmp_path / "fourth" / "lib" / "python3.11" / "site-packages" / "toolz"
    assert (linked / "__init__.py").stat().st_ino == inode  # not extracted again


def test_gc_rechecks_the_cache_after_deleting_prefixes(cache: tuple[Lockfile, Path],
                                                       tmp_path: Path) -> None:
    """Deleting a prefix changes its files' ctimes; GC re-checks (hashing only what
    changed) so the next build need not, and drops a package that no longer matches."""
    import shutil

    from envyard.builder.pkgcache import recheck

    _, pkgs = cache
    toolz = extracted_dir(next(pkgs.glob("toolz-*.conda")))
    python = extracted_dir(next(pkgs.glob("python-3*.conda")))
    _rewrite_in_place(toolz / "site-packages" / "toolz" / "__init__.py", b"import", b"IMPORT")
    shutil.rmtree(tmp_path / "first")  # as GC deletes a prefix
    assert recheck(pkgs / "extracted") == [toolz.name]
    assert not toolz.exists() and python.is_dir()
    stamp = python.parent / f".{python.name}.envyard-stamp"
    before = stamp.read_text()
    assert recheck(pkgs / "extracted") == [] and stamp.read_text() == before  # stat only


def test_an_archive_swapped_after_verification_is_not_linked(
        cache: tuple[Lockfile, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the cache is keyed by file name, so a concurrent build fetching a
    same-named package from another channel could replace a verified archive before it
    was linked. rattler's own hash of the archive is now compared with the lock's."""
    import shutil

    from envyard.builder import install as builder_install

    lock, pkgs = cache
    toolz = next(pkgs.glob("toolz-*.conda"))
    shutil.rmtree(extracted_dir(toolz))
    real_check = builder_install.check_extracted
    swapped: list[Path] = []

    def swap_then_check(archives: list[Path]) -> list[str]:
        if not swapped:  # another build's same-named file lands between fetch and link
            shutil.copyfile(next(pkgs.glob("pyyaml-*.conda")), toolz)
            swapped.append(toolz)
        return real_check(archives)

    monkeypatch.setattr(builder_install, "check_extracted", swap_then_check)
    install_lock(lock, prefix=tmp_path / "fifth", platform="linux-64", pkgs_dir=pkgs)
    assert swapped
    out = subprocess.run([str(tmp_path / "fifth" / "bin" / "python"), "-c",
                          "import toolz; print(toolz.__name__)"], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "toolz", out.stderr
