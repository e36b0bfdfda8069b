"""Locking a spec: --update moves only what it must; a pip: section is locked by pip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envyard.builder.demo.synthetic import synthetic_channel
from envyard.builder.errors import SolveError, SpecError
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec
from tests.releases import channel_before_release, publish_release


def _versions(lock) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {p.name: p.version for p in lock.package}


@pytest.fixture
def old_channel(channel: Path, tmp_path: Path) -> Path:
    """The demo channel without the newer dask/distributed release (hardlinked copy)."""
    return channel_before_release(channel, tmp_path / "channel")


_publish_new_release = publish_release


SPEC = "channels: [x]\ndependencies: [python 3.11.*, dask, distributed, toolz, numpy]\n"


def test_update_moves_the_package_and_what_it_forces_only(
        channel: Path, old_channel: Path, tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    opts = LockOptions(channels=[str(old_channel)], platforms=["linux-64"],
                       cache_dir=tmp_path / "cache")
    first = lock_env(spec, opts)
    assert _versions(first)["dask"] == "2025.12.0"
    _publish_new_release(channel, old_channel)
    opts.previous, opts.update = first, ["dask"]
    second = lock_env(spec, opts)
    before, after = _versions(first), _versions(second)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"dask", "distributed"}  # distributed pins dask exactly
    assert after["dask"] == after["distributed"] == "2026.1.2"
    assert second.metadata.content_hash == first.metadata.content_hash


def test_update_of_unknown_package(old_channel: Path, tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    opts = LockOptions(channels=[str(old_channel)], platforms=["linux-64"],
                       cache_dir=tmp_path / "cache")
    opts.previous, opts.update = lock_env(spec, opts), ["pandas"]
    with pytest.raises(SpecError, match="pandas: not in the lock"):
        lock_env(spec, opts)


def test_update_when_nothing_newer_keeps_the_lock(old_channel: Path, tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    opts = LockOptions(channels=[str(old_channel)], platforms=["linux-64"],
                       cache_dir=tmp_path / "cache")
    first = lock_env(spec, opts)
    opts.previous, opts.update = first, ["toolz"]
    assert _versions(lock_env(spec, opts)) == _versions(first)


def test_pip_section_is_locked_against_the_index(channel: Path, pypi_index: str,
                                                 tmp_path: Path) -> None:
    spec = parse_spec("dependencies:\n  - python 3.11.*\n  - toolz\n  - pip:\n"
                      "      - python-slugify==9.2.0\n      - toolz\n")
    lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=tmp_path / "cache", pip_index=pypi_index))
    pip = {p.name: p for p in lock.package if p.manager == "pip"}
    assert set(pip) == {"python-slugify", "text-unidecode"}  # toolz comes from conda
    slug = pip["python-slugify"]
    assert slug.version == "9.2.0"
    assert slug.url.startswith(pypi_index.rsplit("/", 1)[0]) and slug.hash.sha256
    assert "text-unidecode" in slug.dependencies
    assert "pip" in {p.name for p in lock.package if p.manager == "conda"}


def test_pip_conflict_is_readable(channel: Path, pypi_index: str, tmp_path: Path) -> None:
    spec = parse_spec("dependencies:\n  - python 3.11.*\n  - pip:\n"
                      "      - python-slugify==1.0.0\n")
    with pytest.raises(SolveError, match="pip cannot resolve"):
        lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                   cache_dir=tmp_path / "cache", pip_index=pypi_index))


def test_a_base_lock_keeps_what_the_edit_did_not_touch(
        channel: Path, old_channel: Path, tmp_path: Path) -> None:
    """An edit solved on the current lock (the service's default) adds what was asked and
    what it needs, and keeps dask where it was, though the channel has a newer one; the
    same edit solved fresh takes the newer dask."""
    opts = LockOptions(channels=[str(old_channel)], platforms=["linux-64"],
                       cache_dir=tmp_path / "cache")
    first = lock_env(parse_spec(SPEC), opts)
    _publish_new_release(channel, old_channel)
    edited = parse_spec(SPEC.replace("numpy]", "numpy, pandas]"))
    minimal = lock_env(edited, LockOptions(channels=[str(old_channel)],
                                           platforms=["linux-64"], base=first,
                                           cache_dir=tmp_path / "cache"))
    fresh = lock_env(edited, LockOptions(channels=[str(old_channel)], platforms=["linux-64"],
                                         cache_dir=tmp_path / "cache"))
    before = _versions(first)
    kept = _versions(minimal)
    assert {k: v for k, v in kept.items() if k in before} == before  # nothing moved
    added = set(kept) - set(before)
    assert "pandas" in added and added <= {p.name for p in fresh.package}
    assert _versions(fresh)["dask"] == _versions(fresh)["distributed"] == "2026.1.2"
    # a spec that asks for a newer version than the base has still gets it
    newer = parse_spec(SPEC.replace("dask,", "dask >2025.12.0,"))
    moved = _versions(lock_env(newer, LockOptions(
        channels=[str(old_channel)], platforms=["linux-64"], base=first,
        cache_dir=tmp_path / "cache")))
    assert moved["dask"] == moved["distributed"] == "2026.1.2"
    assert {k for k in before if moved[k] != before[k]} == {"dask", "distributed"}


def test_several_platforms_in_one_lock(tmp_path: Path) -> None:
    ch = synthetic_channel(tmp_path / "ch", records=2000, subdirs=("linux-64", "osx-arm64"))
    spec = parse_spec("platforms: [linux-64, osx-arm64]\n"
                      "dependencies: [python 3.11.*, pkg00042]\n")
    lock = lock_env(spec, LockOptions(channels=[str(ch)], cache_dir=tmp_path / "cache"))
    assert lock.metadata.platforms == ["linux-64", "osx-arm64"]
    assert set(lock.metadata.content_hash) == {"linux-64", "osx-arm64"}
    for platform in ("linux-64", "osx-arm64"):
        names = {p.name for p in lock.for_platform(platform)}
        assert {"python", "pkg00042"} <= names
    # an update keeps the lock's platforms when the file names none (before: this machine's)
    bare = parse_spec("dependencies: [python 3.11.*, pkg00042]\n")
    updated = lock_env(bare, LockOptions(channels=[str(ch)], cache_dir=tmp_path / "cache",
                                         previous=lock, update=["pkg00042"]))
    assert updated.metadata.platforms == ["linux-64", "osx-arm64"]
    assert len(updated.for_platform("osx-arm64")) == len(lock.for_platform("osx-arm64"))
    # and updating one platform keeps the others as they were (as conda-lock does)
    one = lock_env(bare, LockOptions(channels=[str(ch)], cache_dir=tmp_path / "cache",
                                     platforms=["linux-64"], previous=lock,
                                     update=["pkg00042"]))
    assert one.metadata.platforms == ["linux-64", "osx-arm64"]
    assert one.for_platform("osx-arm64") == lock.for_platform("osx-arm64")
    assert one.metadata.content_hash == lock.metadata.content_hash  # same order, same file
    assert list(one.metadata.content_hash) == ["linux-64", "osx-arm64"]
    shutil.rmtree(ch)


def test_name_version_build_specs_solve(channel: Path, tmp_path: Path) -> None:
    """conda's `name>=ver=build` (the real ml-notebook spec's `tensorflow>=2.17.0=cuda12*`)
    locks (before: the spec reader took it and the solve refused its build string)."""
    spec = parse_spec("dependencies:\n  - python>=3.11=*_cpython\n  - toolz=*=py*\n")
    lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=tmp_path / "cache"))
    files = {p.name: p.filename for p in lock.package}
    assert files["python"].endswith("_cpython.conda") and "-py" in files["toolz"]


def test_a_channel_directory_in_the_spec_locks(channel: Path, tmp_path: Path) -> None:
    """`channels: [/abs/dir]` is the same channel as `-c DIR` (before: refused as 'not a
    channel name or URL')."""
    spec = parse_spec(f"channels: [{channel}]\ndependencies: [python 3.11.*, toolz]\n")
    lock = lock_env(spec, LockOptions(platforms=["linux-64"], cache_dir=tmp_path / "cache"))
    assert [c.url for c in lock.metadata.channels] == [str(channel)]  # as conda-lock has it
    assert all(p.url.startswith(channel.as_uri()) for p in lock.package)
