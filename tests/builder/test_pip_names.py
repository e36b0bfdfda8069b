"""pip: sections on conda-forge environments: conda-forge's names, its non-Python packages,
pip's own explanation of a conflict, wheels for the glibc the lock assumes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from envyard.builder import pypi_names
from envyard.builder.errors import FetchError, SolveError
from envyard.builder.lock import HashModel, LockedPackage
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.pip_lock import lock_pip
from envyard.builder.spec import parse_spec
from envyard.builder.virtual import load_virtual_packages
from tests.servers import serve_directory


def _conda(name: str, version: str) -> LockedPackage:
    return LockedPackage(name=name, version=version, manager="conda", platform="linux-64",
                         url=f"file:///srv/channel/linux-64/{name}.conda",  # never fetched
                         hash=HashModel(md5="0" * 32, sha256="0" * 64))


#: What conda-forge installs under a pip: section's feet, with its own names.
CONDA_FORGE = [_conda("python", "3.11.14"), _conda("_openmp_mutex", "4.5"),
               _conda("libgcc", "15.2.0"), _conda("dask-core", "2025.12.0"),
               _conda("jupyter_core", "5.9.1"), _conda("ca-certificates", "2026.1.4")]


def test_conda_forge_names_are_known() -> None:
    assert pypi_names.pypi_name("dask-core") == "dask"
    assert pypi_names.pypi_name("matplotlib-base") == "matplotlib"
    assert pypi_names.pypi_name("pytorch") == "torch"
    assert pypi_names.pypi_name("jupyter_core") == "jupyter-core"
    for not_python in ("_openmp_mutex", "libgcc", "python", "ca-certificates", "tzdata"):
        assert pypi_names.pypi_name(not_python) is None, not_python
    assert pypi_names.conda_name("tzdata") == "python-tzdata"
    assert pypi_names.conda_name("dask") == "dask"  # not dask-core: the same name wins


def test_a_pip_section_on_conda_forge_packages_keeps_conda_s(pypi_index: str) -> None:
    """`_openmp_mutex` is no pip pin (before: `-openmp-mutex==4.5`, an invalid option),
    and `dask` is what conda's `dask-core` provides (before: pip installed dask again)."""
    pip = lock_pip(["dask", "jupyter-core"], conda=CONDA_FORGE, platform="linux-64",
                   index_url=pypi_index, system_version="2.28")
    names = {p.name for p in pip}
    assert "toolz" in names  # what this short conda list lacks comes from pip ...
    assert not names & {"dask", "jupyter-core", "openmp-mutex"}  # ... what it has does not


def test_a_pip_conflict_shows_pips_explanation(pypi_index: str) -> None:
    with pytest.raises(SolveError) as err:
        lock_pip(["dask==2026.1.2"], conda=CONDA_FORGE, platform="linux-64",
                 index_url=pypi_index, system_version="2.28")
    message = str(err.value)
    assert "pip cannot resolve" in message
    assert "dask==2026.1.2" in message and "2025.12.0" in message  # both sides shown


def test_pip_wheels_follow_the_locks_glibc(channel: Path, pypi_index: str,
                                           tmp_path: Path) -> None:
    """numpy's wheel needs glibc 2.27: a lock that assumes 2.17 must not get it."""
    spec = parse_spec("dependencies:\n  - python 3.11.*\n  - pip:\n      - numpy\n")
    old = tmp_path / "virtual.yaml"
    old.write_text("subdirs:\n  linux-64:\n    packages: {__unix: '0', __linux: '5.10', "
                   "__glibc: '2.17'}\n")

    def options(virtual: Path | None) -> LockOptions:
        return LockOptions(channels=[str(channel)], platforms=["linux-64"],
                           cache_dir=tmp_path / "cache", pip_index=pypi_index,
                           virtual=load_virtual_packages(virtual))

    lock = lock_env(spec, options(None))  # conda-lock's default: glibc 2.28
    assert [p.name for p in lock.package if p.manager == "pip"] == ["numpy"]
    with pytest.raises(SolveError, match="numpy"):
        lock_env(spec, options(old))


@pytest.fixture
def mapping_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "mapping.json").write_text(json.dumps(
        {"dask-core": "dask", "libfoo": None, "my_tool": "my-tool", "fancy": "Fancy"}))
    (tmp_path / "broken.json").write_text("[]")
    (tmp_path / "odd.json").write_text('{"dask-core": ["dask"]}')
    with serve_directory(tmp_path) as (url, _):
        yield url


def test_the_name_map_is_refreshed_from_upstream(mapping_server: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVYARD_HOME", str(tmp_path / "home"))
    try:
        for bad in ("broken.json", "odd.json"):
            with pytest.raises(FetchError, match="does not hold"):
                pypi_names.refresh(f"{mapping_server}/{bad}")
        assert not list((tmp_path / "home").glob("*"))  # nothing half-written
        assert pypi_names.pypi_name("libgcc") is None  # the shipped map still answers
        path = pypi_names.refresh(f"{mapping_server}/mapping.json")
        assert path == tmp_path / "home" / "pypi-names.json"
        assert pypi_names.pypi_name("libfoo") is None
        assert pypi_names.pypi_name("my_tool") == "my-tool"
        assert pypi_names.pypi_name("libgcc") == "libgcc"  # the new map replaces the old
        assert pypi_names.conda_name("dask") == "dask-core"
        path.write_text('{"pypi_names": {}}')  # damaged: the shipped map answers again
        pypi_names._maps.cache_clear()
        assert pypi_names.pypi_name("libgcc") is None
    finally:
        pypi_names._maps.cache_clear()
