"""Building prefixes from locks: they run, rebuilds are free, bad locks change nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from envyard.builder.errors import HashMismatch, InstallError, LockError
from envyard.builder.install import install_lock, installed_fingerprint
from envyard.builder.lock import Lockfile, read_lock, write_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec, read_spec
from tests.conftest import REPO


@pytest.fixture(scope="module")
def dask_lock(channel: Path, cache_dir: Path) -> Lockfile:
    spec = read_spec(REPO / "envs" / "dask-notebook.yml")
    return lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=cache_dir))


@pytest.fixture(scope="module")
def dask_env(dask_lock: Lockfile, pkgs_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Path:
    prefix = tmp_path_factory.mktemp("envs") / "dask"
    result = install_lock(dask_lock, prefix=prefix, platform="linux-64", pkgs_dir=pkgs_dir)
    assert not result.reused and result.conda_packages == len(dask_lock.package)
    return prefix


def _run(python: Path, code: str) -> str:
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_built_env_runs_dask(dask_env: Path) -> None:
    out = _run(dask_env / "bin" / "python",
               "import sys, dask, distributed, numpy, pandas, ipykernel\n"
               "print(sys.prefix, dask.__version__, distributed.__version__)")
    assert out == f"{dask_env} 2025.12.0 2025.12.0"


def test_entry_points_use_the_env_python(dask_env: Path) -> None:
    script = dask_env / "bin" / "dask"
    assert script.read_text().splitlines()[0].startswith(f"#!{dask_env}/bin/python")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=120)
    assert "2025.12.0" in done.stdout + done.stderr


def test_identical_lock_reuses_the_prefix(dask_env: Path, dask_lock: Lockfile,
                                          pkgs_dir: Path) -> None:
    marker = dask_env / "marker"
    marker.write_text("still here")
    again = install_lock(dask_lock, prefix=dask_env, platform="linux-64", pkgs_dir=pkgs_dir)
    assert again.reused and again.seconds < 1
    assert marker.read_text() == "still here"
    marker.unlink()


def test_no_staging_left_beside_the_prefix(dask_env: Path) -> None:
    assert not [p for p in dask_env.parent.iterdir() if "staging" in p.name]


def _tampered(lock: Lockfile, name: str) -> Lockfile:
    bad = lock.copy()
    for p in bad.package:
        if p.name == name:
            p.hash.sha256 = "0" * 64
    return bad


def test_tampered_sha256_is_refused_and_nothing_appears(
        dask_lock: Lockfile, tmp_path: Path) -> None:
    target = tmp_path / "env"
    with pytest.raises(HashMismatch, match=r"numpy.*sha256 mismatch"):
        install_lock(_tampered(dask_lock, "numpy"), prefix=target, platform="linux-64",
                     pkgs_dir=tmp_path / "pkgs")
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]
    assert not list((tmp_path / "pkgs").glob("numpy*"))


def test_tampered_package_file_is_refused(dask_lock: Lockfile, tmp_path: Path) -> None:
    bad = dask_lock.copy()
    pkg = next(p for p in bad.package if p.name == "toolz")
    forged = tmp_path / pkg.filename
    forged.write_bytes(b"not the package")
    pkg.url = forged.as_uri()
    with pytest.raises(HashMismatch, match="toolz"):
        install_lock(bad, prefix=tmp_path / "env", platform="linux-64",
                     pkgs_dir=tmp_path / "pkgs")
    assert not (tmp_path / "env").exists()


def test_lock_without_sha256_is_refused(dask_lock: Lockfile, tmp_path: Path) -> None:
    bad = dask_lock.copy()
    bad.package[0].hash.sha256 = None
    with pytest.raises(LockError, match="no sha256"):
        install_lock(bad, prefix=tmp_path / "env", platform="linux-64",
                     pkgs_dir=tmp_path / "pkgs")


def test_wrong_platform_is_refused(dask_lock: Lockfile, tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no packages for osx-arm64"):
        install_lock(dask_lock, prefix=tmp_path / "env", platform="osx-arm64",
                     pkgs_dir=tmp_path / "pkgs")
    assert not (tmp_path / "env").exists()


def test_replacing_another_env_needs_force(channel: Path, cache_dir: Path, pkgs_dir: Path,
                                           tmp_path: Path) -> None:
    opts = LockOptions(channels=[str(channel)], platforms=["linux-64"], cache_dir=cache_dir)
    small = lock_env(parse_spec("dependencies: [python 3.11.*, toolz]\n"), opts)
    other = lock_env(parse_spec("dependencies: [python 3.11.*, msgpack-python]\n"), opts)
    prefix = tmp_path / "env"
    install_lock(small, prefix=prefix, platform="linux-64", pkgs_dir=pkgs_dir)
    with pytest.raises(InstallError, match="--force"):
        install_lock(other, prefix=prefix, platform="linux-64", pkgs_dir=pkgs_dir)
    assert _run(prefix / "bin" / "python", "import toolz; print('ok')") == "ok"
    install_lock(other, prefix=prefix, platform="linux-64", pkgs_dir=pkgs_dir, force=True)
    assert _run(prefix / "bin" / "python", "import msgpack; print('ok')") == "ok"
    assert installed_fingerprint(prefix) is not None
    assert not [p for p in tmp_path.iterdir() if "envyard-old" in p.name]


def test_refuses_to_replace_a_non_env_directory(dask_lock: Lockfile, pkgs_dir: Path,
                                                tmp_path: Path) -> None:
    home = tmp_path / "precious"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(InstallError, match="not a conda environment"):
        install_lock(dask_lock, prefix=home, platform="linux-64", pkgs_dir=pkgs_dir,
                     force=True)
    assert (home / "thesis.tex").read_text() == "years of work"


def test_pip_packages_are_installed(channel: Path, cache_dir: Path, pkgs_dir: Path,
                                    pypi_index: str, tmp_path: Path) -> None:
    spec = parse_spec("dependencies:\n  - python 3.11.*\n  - pip:\n"
                      "      - python-slugify==9.2.0\n")
    lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=cache_dir, pip_index=pypi_index))
    path = tmp_path / "conda-lock.yml"
    write_lock(lock, path)
    prefix = tmp_path / "env"
    result = install_lock(read_lock(path), prefix=prefix, platform="linux-64",
                          pkgs_dir=pkgs_dir)
    assert result.pip_packages == 2
    assert _run(prefix / "bin" / "python",
                "from slugify import slugify; print(slugify('Hello World'))") == "hello-world"
    assert (prefix / "bin" / "slugify").read_text().startswith(f"#!{prefix}/bin/python")


def test_versions_one_package_apart_share_their_records(
        channel: Path, cache_dir: Path, tmp_path: Path) -> None:
    """An immutable prefix's conda-meta records are hard links to one copy per content
    (~9 MB an 800-package environment, per version before); a copy changed under its
    name is not spread, and pruning removes copies no prefix links."""
    import os

    from envyard.builder import records

    pkgs = tmp_path / "pkgs"
    opts = LockOptions(channels=[str(channel)], platforms=["linux-64"], cache_dir=cache_dir)
    one = lock_env(parse_spec("dependencies: [python 3.11.*, toolz]\n"), opts)
    two = lock_env(parse_spec("dependencies: [python 3.11.*, toolz, msgpack-python]\n"), opts)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    install_lock(one, prefix=a, platform="linux-64", pkgs_dir=pkgs, shared_records=True)
    install_lock(two, prefix=b, platform="linux-64", pkgs_dir=pkgs, shared_records=True)
    python = next(p.name for p in (a / "conda-meta").glob("python-3*.json"))
    toolz = next(p.name for p in (a / "conda-meta").glob("toolz-*.json"))
    assert os.path.samestat((a / "conda-meta" / toolz).stat(), (b / "conda-meta" / toolz).stat())
    assert (a / "conda-meta" / python).stat().st_nlink >= 2  # its copy in the store
    assert _run(b / "bin" / "python", "import msgpack, toolz; print('ok')") == "ok"

    store = records.store_of(pkgs)
    kept = next(k for k in store.iterdir()
                if os.path.samestat(k.stat(), (a / "conda-meta" / toolz).stat()))
    original = kept.read_bytes()
    kept.unlink()  # a store copy replaced by other bytes under its name …
    kept.write_bytes(b'{"name": "evil"}')
    install_lock(one, prefix=c, platform="linux-64", pkgs_dir=pkgs, shared_records=True,
                 force=True)
    assert (c / "conda-meta" / toolz).read_bytes() == original  # … is not spread
    assert kept.read_bytes() == original  # and the honest record took its place

    local = tmp_path / "mine"  # a user's own prefix keeps its own records (conda edits them)
    install_lock(one, prefix=local, platform="linux-64", pkgs_dir=pkgs)
    assert (local / "conda-meta" / toolz).stat().st_nlink == 1

    for prefix in (a, b, c):
        shutil.rmtree(prefix)
    assert records.prune(store) > 0 and not list(store.iterdir())


def test_a_volume_without_hard_links_keeps_each_record(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a refused link (SMB volumes, EMLINK) failed the build as an internal error."""
    import os

    from envyard.builder import records

    meta = tmp_path / "conda-meta"
    meta.mkdir()
    (meta / "a-1-0.json").write_text('{"name": "a"}')
    records.share(meta, tmp_path / "store")  # the first copy

    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    other = tmp_path / "other" / "conda-meta"
    other.mkdir(parents=True)
    (other / "a-1-0.json").write_text('{"name": "a"}')
    monkeypatch.setattr(os, "link", refuse)
    assert records.share(other, tmp_path / "store") == 0
    assert (other / "a-1-0.json").read_text() == '{"name": "a"}'
