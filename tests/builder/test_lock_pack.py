"""A lock's other platform packed without installing it: the archive holds exactly that
platform's locked packages (and noarch), verified, and its unpack script makes a prefix
on this machine whose conda-meta names exactly the lock's packages."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from envyard.builder.demo.conda_package import write_conda
from envyard.builder.errors import HashMismatch, LockError, UnsafeURL
from envyard.builder.fetch import Sources
from envyard.builder.lock import Lockfile
from envyard.builder.lock_pack import pack_lock
from tests.platform_channel import (
    SECOND,
    index,
    lock_both,
    second_platform_channel,
    second_platform_packages,
)


@pytest.fixture(scope="module")
def cross(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("cross")
    ch = second_platform_channel(base / "channel", channel)
    return {"channel": ch, "lock": lock_both(ch, base / "cache")}


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def _expected(lock: Lockfile, platform: str) -> dict[str, str]:
    """channel/<subdir>/<file> -> sha256 of every conda package the lock has for it."""
    out = {}
    for p in lock.for_platform(platform, "conda"):
        subdir = p.url.rsplit("/", 2)[-2]
        out[f"channel/{subdir}/{p.filename}"] = p.hash.sha256 or ""
    return out


def _unpack(archive: Path, where: Path, prefix: Path,
            **env: str) -> subprocess.CompletedProcess[str]:
    where.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(where)], check=True)
    run_env = {"PATH": os.environ["PATH"], "HOME": str(where),
               "PYTHON": sys.executable, **env}
    return subprocess.run(["sh", str(where / "unpack.sh"), str(prefix)], env=run_env,
                          capture_output=True, text=True, timeout=300)


def test_the_second_platforms_pack_holds_exactly_its_verified_packages_and_unpacks_here(
        cross: dict[str, Any], tmp_path: Path) -> None:
    lock: Lockfile = cross["lock"]
    assert {p.platform for p in lock.package} == {"linux-64", SECOND}
    result = pack_lock(lock, SECOND, tmp_path / "env-osx-arm64.tar",
                       pkgs_dir=tmp_path / "pkgs", sources=Sources.of([str(cross["channel"])]))
    members = _members(result.archive)
    expected = _expected(lock, SECOND)
    packages = {n: hashlib.sha256(b).hexdigest() for n, b in members.items()
                if n.endswith((".conda", ".tar.bz2"))}
    assert packages == expected  # the osx-arm64 and noarch ones, each the locked bytes
    assert any(n.startswith(f"channel/{SECOND}/pyyaml-") for n in packages)
    assert not any("linux-64" in n for n in members)
    for subdir in ("noarch", SECOND):  # a local channel a conda tool can read
        repodata = json.loads(members[f"channel/{subdir}/repodata.json"])
        assert {f"channel/{subdir}/{f}" for f in repodata["packages.conda"]} == \
            {n for n in expected if n.startswith(f"channel/{subdir}/")}
    manifest = json.loads(members["envyard-pack.json"])
    assert manifest["platform"] == SECOND
    assert {p["sha256"] for p in manifest["packages"]} == set(expected.values())
    explicit = members["explicit.txt"].decode().splitlines()
    assert explicit[explicit.index("@EXPLICIT") + 1:] and all(
        line.split("#")[0] in expected and line.split("#")[1] == expected[line.split("#")[0]]
        for line in explicit[explicit.index("@EXPLICIT") + 1:])

    prefix = tmp_path / "unpacked env"
    done = _unpack(result.archive, tmp_path / "pack", prefix)
    assert done.returncode == 0, done.stderr
    records = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    assert records == {f"{p.name}-{p.version}-{p.conda_build}.json"
                       for p in lock.for_platform(SECOND, "conda")}
    # linked for where it is, as the target platform lays files out; nothing ran
    yaml_init = prefix / "lib/python3.11/site-packages/yaml/__init__.py"
    assert yaml_init.read_text() == f"PREFIX = '{prefix}'\n"
    assert json.loads((prefix / "conda-meta" / next(
        r for r in records if r.startswith("pyyaml-"))).read_text())["subdir"] == SECOND


def test_the_same_lock_gives_the_same_archive_byte_for_byte(cross: dict[str, Any],
                                                              tmp_path: Path) -> None:
    sources = Sources.of([str(cross["channel"])])
    a = pack_lock(cross["lock"], SECOND, tmp_path / "a.tar", pkgs_dir=tmp_path / "p1",
                  sources=sources)
    b = pack_lock(cross["lock"], SECOND, tmp_path / "b.tar", pkgs_dir=tmp_path / "p2",
                  sources=sources)
    assert a.archive.read_bytes() == b.archive.read_bytes()
    with tarfile.open(a.archive) as tar:
        assert all(not m.name.startswith("/") and ".." not in m.name.split("/")
                   and m.uid == 0 and m.mtime == 0 for m in tar.getmembers())


def test_a_tampered_package_fails_with_a_hash_error_and_writes_nothing(
        cross: dict[str, Any], tmp_path: Path) -> None:
    """The channel's pyyaml for osx-arm64 rebuilt with other contents under its name: the
    lock's sha256 no longer matches, so the pack stops and no archive appears."""
    channel = tmp_path / "channel"
    shutil.copytree(cross["channel"], channel)
    lock = cross["lock"].copy()
    for p in lock.package:  # the same lock, pointing at the copy
        p.url = p.url.replace(str(cross["channel"]), str(channel))
    pyyaml = next(s for s in second_platform_packages() if s.name == "pyyaml")
    pyyaml.files[0].data += b"# something else\n"
    write_conda(pyyaml, channel / SECOND)
    index(channel)
    out = tmp_path / "out"
    with pytest.raises(HashMismatch, match="pyyaml: sha256 mismatch"):
        pack_lock(lock, SECOND, out / "env.tar", pkgs_dir=tmp_path / "pkgs",
                  sources=Sources.of([str(channel)]))
    assert list(out.iterdir()) == []


def test_a_platform_the_lock_lacks_and_a_url_outside_the_sources_are_refused(
        cross: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"no packages for win-64 \(it has: linux-64, "
                       r"osx-arm64\)"):
        pack_lock(cross["lock"], "win-64", tmp_path / "w.tar", pkgs_dir=tmp_path / "pkgs")
    with pytest.raises(UnsafeURL):
        pack_lock(cross["lock"], SECOND, tmp_path / "x.tar", pkgs_dir=tmp_path / "pkgs",
                  sources=Sources.of([str(tmp_path / "elsewhere")]))
    assert not list(tmp_path.glob("*.tar"))


def test_a_conda_tool_on_path_gets_file_urls_of_the_unpacked_channel(
        cross: dict[str, Any], tmp_path: Path) -> None:
    """With micromamba (or mamba, conda) on PATH, unpack.sh hands it the explicit list with
    each package as a file:// URL of where the pack was unpacked (a directory with a
    space), with its sha256: a stand-in records what it was asked."""
    result = pack_lock(cross["lock"], SECOND, tmp_path / "env.tar", pkgs_dir=tmp_path / "pkgs",
                       sources=Sources.of([str(cross["channel"])]))
    tools = tmp_path / "tools"
    tools.mkdir()
    asked = tmp_path / "asked.txt"
    (tools / "micromamba").write_text(
        f'#!/bin/sh\necho "$CONDA_SUBDIR $*" > "{asked}"\n'
        f'while [ "$#" -gt 0 ]; do [ "$1" = --file ] && cat "$2" >> "{asked}"; shift; done\n')
    (tools / "micromamba").chmod(0o755)
    where = tmp_path / "my pack"
    done = _unpack(result.archive, where, tmp_path / "env",
                   PATH=f"{tools}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    lines = asked.read_text().splitlines()
    assert lines[0].startswith(f"{SECOND} create --yes --offline --prefix {tmp_path / 'env'}")
    urls = [line for line in lines if line.startswith("file://")]
    expected = _expected(cross["lock"], SECOND)
    assert len(urls) == len(expected)
    for line in urls:
        url, sha256 = line.split("#")
        path = Path(url.removeprefix("file://").replace("%20", " "))
        assert path.is_file() and path.is_relative_to(where)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def test_the_cli_packs_a_lock_for_a_platform_and_names_the_ones_it_has(
        cross: dict[str, Any], tmp_path: Path) -> None:
    from envyard.builder.lock import write_lock
    from tests.servers import ENVYARD

    lockfile = tmp_path / "conda-lock.yml"
    write_lock(cross["lock"], lockfile)
    home = ["--home", str(tmp_path / "home")]
    done = subprocess.run([ENVYARD, "pack", "--from-lock", str(lockfile), "-p", SECOND,
                           "-o", str(tmp_path / "env.tar"), *home], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "fetch" in done.stderr and "unpack.sh" in done.stderr  # progress, then the how
    assert set(_members(tmp_path / "env.tar")) >= set(_expected(cross["lock"], SECOND))
    wrong = subprocess.run([ENVYARD, "pack", "--from-lock", str(lockfile), "-p", "win-64",
                            *home], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert wrong.returncode == 12
    assert "no packages for win-64 (it has: linux-64, osx-arm64)" in wrong.stderr
    assert not (tmp_path / "env-win-64.tar").exists()
