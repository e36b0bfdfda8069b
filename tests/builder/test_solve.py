"""Solving: real channel, several platforms, readable conflicts, hard time limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from envyard.builder.aio import run_with_timeout
from envyard.builder.demo.synthetic import synthetic_channel
from envyard.builder.errors import IndexUnreachable, SolveError, SolveTimeout, SpecError
from envyard.builder.solve import SolveRequest, solve, solve_all
from envyard.builder.virtual import load_virtual_packages


def _req(channel: Path, specs: list[str], cache: Path, **kw: object) -> SolveRequest:
    platform = str(kw.pop("platform", "linux-64"))
    return SolveRequest(specs=specs, channels=[str(channel)], platform=platform,
                        virtual=load_virtual_packages(), cache_dir=cache,
                        **kw)  # type: ignore[arg-type]


def test_solves_dask_with_marker_dependencies(channel: Path, cache_dir: Path) -> None:
    records = solve(_req(channel, ["python 3.11.*", "dask", "distributed"], cache_dir))
    names = {r.name.normalized: str(r.version) for r in records}
    assert names["dask"] == names["distributed"] == "2026.1.2"  # newest release wins
    # dask requires importlib_metadata only where python_version < "3.12": kept for 3.11
    assert "importlib-metadata" in names
    assert "msgpack-python" in names and "python_abi" in names


def test_conflict_is_readable(channel: Path, cache_dir: Path) -> None:
    with pytest.raises(SolveError) as err:
        solve(_req(channel, ["python 3.11.*", "dask ==2025.12.0", "distributed ==2026.1.2"],
                   cache_dir))
    text = str(err.value)
    assert "cannot be satisfied" in text and "distributed" in text and "dask" in text


def test_missing_package(channel: Path, cache_dir: Path) -> None:
    with pytest.raises(SolveError, match="no-such-package"):
        solve(_req(channel, ["python", "no-such-package"], cache_dir))


def test_virtual_packages_are_applied(tmp_path: Path, cache_dir: Path) -> None:
    ch = synthetic_channel(tmp_path / "ch", records=200)
    with pytest.raises(SolveError, match="__glibc"):
        solve(_req(ch, ["python 3.11.*", "__glibc >=2.99"], cache_dir))


def test_several_platforms(tmp_path: Path, cache_dir: Path) -> None:
    ch = synthetic_channel(tmp_path / "ch", records=2000, subdirs=("linux-64", "osx-arm64"))
    for platform in ("linux-64", "osx-arm64"):
        records = solve(_req(ch, ["python 3.11.*", "pkg00042"], cache_dir, platform=platform))
        assert {r.subdir for r in records} <= {platform, "noarch"}
        assert any(r.subdir == platform for r in records)


def test_solver_time_limit(tmp_path: Path, cache_dir: Path) -> None:
    ch = synthetic_channel(tmp_path / "ch", records=20_000)
    start = time.monotonic()
    with pytest.raises(SolveTimeout, match="time"):
        solve(_req(ch, ["python 3.11.*", "pkg00700", "pkg00699", "pkg00650"], cache_dir,
                   timeout=0.0001))
    assert time.monotonic() - start < 30


def test_hard_limit_stops_a_hung_coroutine() -> None:
    start = time.monotonic()
    with pytest.raises(SolveTimeout):
        run_with_timeout(lambda: asyncio.sleep(3600), timeout=0.3,
                         on_timeout=lambda: SolveTimeout("stopped"))
    assert time.monotonic() - start < 5


def test_no_channels(cache_dir: Path) -> None:
    with pytest.raises(SolveError, match="no channels"):
        solve(SolveRequest(specs=["python"], channels=[], platform="linux-64",
                           virtual=load_virtual_packages(), cache_dir=cache_dir))


def test_virtual_package_spec_overrides_defaults(tmp_path: Path, cache_dir: Path) -> None:
    ch = synthetic_channel(tmp_path / "ch", records=200)
    spec = tmp_path / "virtual-packages.yaml"
    spec.write_text("subdirs:\n  linux-64:\n    packages:\n      __glibc: '2.99'\n"
                    "      __unix: '0'\n")
    req = SolveRequest(specs=["python 3.11.*", "__glibc >=2.99"], channels=[str(ch)],
                       platform="linux-64", virtual=load_virtual_packages(spec),
                       cache_dir=cache_dir)
    assert any(r.name.normalized == "python" for r in solve(req))


def test_bad_virtual_package_spec(tmp_path: Path) -> None:
    spec = tmp_path / "virtual-packages.yaml"
    spec.write_text("subdirs:\n  linux-64:\n    packages:\n      glibc: '2.99'\n")
    with pytest.raises(SpecError, match="not a virtual package"):
        load_virtual_packages(spec)


def test_a_missing_package_named_like_a_timeout_is_missing(channel: Path,
                                                          cache_dir: Path) -> None:
    """conda-forge has `async-timeout`: its absence is a conflict, not 'ran out of time'."""
    with pytest.raises(SolveError, match="cannot be satisfied") as err:
        solve(_req(channel, ["python", "async-timeout"], cache_dir))
    assert not isinstance(err.value, SolveTimeout)
    with pytest.raises(SolveError, match="cannot be satisfied") as err:
        solve(_req(channel, ["python", "cancel-token"], cache_dir))
    assert not isinstance(err.value, SolveTimeout)


def test_an_unreachable_channel_is_a_fetch_error(cache_dir: Path) -> None:
    """Before: exit 11 "unsolvable" for what is a network failure (13)."""
    with pytest.raises(IndexUnreachable, match="cannot read the channels' package index") as e:
        solve(_req("http://127.0.0.1:9", ["python"], cache_dir))  # type: ignore[arg-type]
    assert e.value.exit_code == 13 and not isinstance(e.value, SolveError)


def test_a_malformed_match_spec_is_a_bad_spec(channel: Path, cache_dir: Path) -> None:
    """Before: exit 11 "could not solve (InvalidMatchSpecError)"."""
    with pytest.raises(SpecError, match="match spec cannot be read") as e:
        solve(_req(channel, ["python >>> 3"], cache_dir))
    assert e.value.exit_code == 10


def test_platforms_solved_at_once_fail_by_the_first_that_fails(tmp_path: Path,
                                                               cache_dir: Path) -> None:
    ch = synthetic_channel(tmp_path / "ch", records=2000, subdirs=("linux-64", "osx-arm64"))
    good = _req(ch, ["python 3.11.*", "pkg00042"], cache_dir, platform="linux-64")
    bad = _req(ch, ["python 3.11.*", "no-such-package"], cache_dir, platform="osx-arm64")
    assert len(solve_all([good, good])) == 2 and solve_all([]) == []
    with pytest.raises(SolveError, match="osx-arm64: the specs cannot be satisfied"):
        solve_all([good, bad])
