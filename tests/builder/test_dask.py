"""Dask pin checks agree with distributed itself, and run over every real lock."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from envyard.builder.dask import (
    OPTIONAL,
    REQUIRED,
    PinSet,
    check,
    constraints,
    env_versions,
    pins_from_lock,
    read_pins,
)
from envyard.builder.errors import SpecError
from envyard.builder.lock import (
    HashModel,
    LockChannel,
    LockedPackage,
    Lockfile,
    LockMeta,
    read_lock,
)
from tests.conftest import CORPUS, REPO

CONDA = {"msgpack": "msgpack-python"}


def _lock(versions: dict[str, str], platform: str = "linux-64") -> Lockfile:
    pkgs = [LockedPackage(name=CONDA.get(n, n), version=v, manager="conda", platform=platform,
                          url=f"https://example.org/{n}-{v}-0.conda",
                          hash=HashModel(md5="0", sha256="0")) for n, v in versions.items()]
    meta = LockMeta(content_hash={platform: "x"}, channels=[LockChannel(url="c")],
                    platforms=[platform], sources=["environment.yml"])
    return Lockfile(metadata=meta, package=pkgs)


BASE = {"python": "3.11.7", "dask": "2025.12.0", "distributed": "2025.12.0",
        "msgpack": "1.2.4", "cloudpickle": "3.1.3", "tornado": "6.6.1", "toolz": "1.2.0",
        "numpy": "2.4.6", "pandas": "3.1.1"}
CHANGES = [{}, {"dask": "2026.1.2", "distributed": "2026.1.2"}, {"tornado": "6.5.0"},
           {"numpy": "2.3.0"}, {"lz4": "4.4.5"}, {"pandas": None}, {"python": "3.11.9"},
           {"python": "3.12.1"}, {"msgpack": "1.1.0"}, {"toolz": None}]


def _distributed_mismatches(client: dict[str, str], cluster: dict[str, str]) -> set[str]:
    """Ask distributed: which packages does it report as mismatched?"""
    from distributed import versions as dv

    def info(v: dict[str, str]) -> dict[str, dict[str, str | None]]:
        pkgs: dict[str, str | None] = {n: None for n in dv.required_packages
                                       + dv.optional_packages}
        pkgs.update({n: (".".join(x.split(".")[:2]) if n == "python" else x)
                     for n, x in v.items()})
        return {"packages": pkgs}

    msg = dv.error_message(info(cluster), {"worker-1": info(cluster)}, info(client))
    table = msg["warning"]
    names = set(REQUIRED + OPTIONAL)
    return {line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("|") and line.split("|")[1].strip() in names}


@pytest.mark.parametrize("env_change,cluster_change",
                         list(itertools.product(range(len(CHANGES)), [0, 1, 4, 6])))
def test_verdicts_agree_with_distributed(env_change: int, cluster_change: int) -> None:
    env = {k: v for k, v in {**BASE, **CHANGES[env_change]}.items() if v is not None}
    cluster = {k: v for k, v in {**BASE, **CHANGES[cluster_change]}.items() if v is not None}
    report = check(_lock(env), "linux-64", PinSet(cluster))
    ours = {v.package for v in report.verdicts if not v.ok}
    assert ours == _distributed_mismatches(env, cluster)
    for v in report.verdicts:
        assert v.env == env.get(v.package) and v.cluster == cluster.get(v.package)


def test_missing_optional_is_a_warning_and_required_blocks() -> None:
    env = {**BASE, "lz4": "4.4.5"}
    report = check(_lock(env), "linux-64", PinSet({**BASE, "tornado": "6.5.0"}))
    assert [v.package for v in report.warnings] == ["lz4"]
    assert report.warnings[0].verdict == "missing"
    assert [v.package for v in report.blocking] == ["tornado"] and not report.ok


def test_lockstep() -> None:
    report = check(_lock({**BASE, "distributed": "2026.1.2"}), "linux-64", PinSet(BASE))
    assert report.lockstep and "lockstep" in report.lockstep and not report.ok


def test_env_without_distributed_is_not_checked() -> None:
    assert not check(_lock({"python": "3.11.7", "numpy": "2.4.6"}), "linux-64",
                     PinSet(BASE)).applies


def test_pin_file_and_constraints(tmp_path: Path) -> None:
    pins = read_pins(REPO / "envs" / "cluster" / "dask-pins.yml")
    assert pins.get("dask") == pins.get("distributed") == "2025.12.0"
    assert "dask ==2025.12.0" in constraints(pins)
    assert "msgpack-python ==1.2.4" in constraints(pins)
    assert "python 3.11.*" in constraints(pins)
    bad = tmp_path / "pins.yml"
    bad.write_text("dask: 1\nbokeh: 3\n")
    with pytest.raises(SpecError, match="'bokeh' is not a package distributed compares"):
        read_pins(bad)


CORPUS_LOCKS = sorted(CORPUS.rglob("conda-lock.yml"))


def test_checks_run_over_every_corpus_lock() -> None:
    reference = read_lock(CORPUS_LOCKS[0])
    pins = pins_from_lock(reference, "linux-64", str(CORPUS_LOCKS[0]))
    seen = {}
    for path in CORPUS_LOCKS:
        lock = read_lock(path)
        for platform in lock.metadata.platforms:
            report = check(lock, platform, pins)
            assert report.applies, (path, platform)
            assert {v.package for v in report.verdicts} >= set(REQUIRED)
            seen[(path.parent.name, platform)] = env_versions(lock, platform)["dask"]
    assert len(set(seen.values())) > 1  # dask moved over the corpus history
    assert len(seen) >= 40


def test_constraints_round_trip() -> None:
    from envyard.builder.dask import pins_from_constraints

    pins = read_pins(REPO / "envs" / "cluster" / "dask-pins.yml")
    back = pins_from_constraints(constraints(pins))
    assert back.versions == pins.versions
