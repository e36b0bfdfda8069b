"""conda-lock.yml: conda-lock's own code reads, rewrites and renders what we write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import LockError
from builder.lock import dump_lock, parse_lock, read_lock, write_lock
from builder.locker import LockOptions, lock_env
from builder.render import dependency_order, render_explicit
from builder.spec import read_spec
from tests.conftest import CORPUS, REPO

CORPUS_LOCKS = sorted(CORPUS.rglob("conda-lock.yml"))


@pytest.fixture(scope="module")
def our_lock(channel: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = read_spec(REPO / "envs" / "dask-notebook.yml")
    lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=cache_dir))
    path = tmp_path_factory.mktemp("lock") / "conda-lock.yml"
    write_lock(lock, path)
    return path


@pytest.mark.parametrize("path", CORPUS_LOCKS,
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_reads_corpus_locks_and_round_trips_byte_for_byte(path: Path) -> None:
    lock = read_lock(path)
    meta = lock.metadata
    assert meta.platforms and set(meta.content_hash) == set(meta.platforms)
    assert len(lock.package) > 500
    assert {p.manager for p in lock.package} <= {"conda", "pip"}
    assert dump_lock(lock) == path.read_text()


def test_conda_lock_models_accept_our_lock_and_rewrite_it_identically(
        our_lock: Path, tmp_path: Path) -> None:
    from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file

    theirs = parse_conda_lock_file(our_lock)
    assert {p.name for p in theirs.package} >= {"python", "dask", "distributed", "numpy"}
    rewritten = tmp_path / "conda-lock.yml"
    write_conda_lock_file(theirs, rewritten, metadata_choices=None)
    assert rewritten.read_text() == our_lock.read_text()


def test_conda_lock_render_matches_ours(our_lock: Path, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("conda-lock")
    done = subprocess.run([str(cli), "render", "-k", "explicit", "-p", "linux-64",
                           str(our_lock)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    theirs = (tmp_path / "conda-linux-64.lock").read_text()
    assert render_explicit(read_lock(our_lock), "linux-64") == theirs


def test_corpus_render_matches_conda_lock_order() -> None:
    from conda_lock.lockfile import parse_conda_lock_file

    path = sorted((CORPUS / "pangeo-base-notebook").rglob("conda-lock.yml"))[-1]
    ours = [line for line in render_explicit(read_lock(path), "osx-arm64").splitlines()
            if line.startswith("https://")]
    ref = parse_conda_lock_file(path)
    ref.toposort_inplace()
    theirs = [f"{p.url}#{p.hash.md5}" for p in ref.package
              if p.platform == "osx-arm64" and p.manager == "conda"]
    assert ours == theirs


def test_round_trip_of_our_lock_is_stable(our_lock: Path, tmp_path: Path) -> None:
    again = tmp_path / "conda-lock.yml"
    write_lock(read_lock(our_lock), again)
    assert again.read_text() == our_lock.read_text()


def test_dependency_order_breaks_cycles() -> None:
    assert dependency_order({"a": {"b"}, "b": {"a"}, "c": set()}) == ["c", "a", "b"]
    assert dependency_order({"python": {"pip"}, "pip": {"python"}}) == ["python", "pip"]


def test_render_refuses_missing_platform(our_lock: Path) -> None:
    with pytest.raises(LockError, match="no platform osx-arm64"):
        render_explicit(read_lock(our_lock), "osx-arm64")


GOOD = """version: 1
metadata:
  content_hash: {linux-64: abc}
  channels: [{url: conda-forge, used_env_vars: []}]
  platforms: [linux-64]
  sources: [environment.yml]
package:
- name: x
  version: '1'
  manager: conda
  platform: linux-64
  dependencies: {}
  url: https://example.org/x-1-0.conda
  hash: {md5: '0123', sha256: abcd}
  category: main
  optional: false
"""


@pytest.mark.parametrize("text,words", [
    (GOOD.replace("version: 1", "version: 2"), "unsupported lock version"),
    (GOOD.replace("  optional: false", "  optional: false\n  evil: 1"), "unknown field `evil`"),
    (GOOD.replace("  manager: conda", "  manager: npm"), "Invalid enum value 'npm'"),
    (GOOD.replace("url: https://example.org/x-1-0.conda", "url: ''"), "URL cannot be empty"),
    ("- [", "not valid YAML"),
    ("just text", "expected a mapping"),
    ("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", "anchors and aliases are not allowed"),
    ("version: 1\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 32 levels"),
    ("version: 1\npackage: [" + "a," * 600_000 + "a]\n", "more than 500000 YAML nodes"),
    ("version: 1\nx: !!python/object:os.system ls\n", "unknown tag"),
], ids=["version", "unknown-field", "manager", "empty-url", "bad-yaml", "not-mapping",
        "alias-bomb", "deep", "many-nodes", "python-tag"])
def test_bad_locks_are_refused(text: str, words: str) -> None:
    assert parse_lock(GOOD).package[0].name == "x"
    with pytest.raises(LockError, match=words):
        parse_lock(text, source="bad.yml")


def test_missing_lock_file(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="no such file"):
        read_lock(tmp_path / "conda-lock.yml")


def test_write_is_atomic_on_failure(our_lock: Path, tmp_path: Path) -> None:
    target = tmp_path / "conda-lock.yml"
    target.write_text("old content")
    lock = read_lock(our_lock)
    lock.package[0].version = object()  # type: ignore[assignment]  # cannot be dumped
    with pytest.raises(Exception):  # noqa: B017
        write_lock(lock, target)
    assert target.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["conda-lock.yml"]


def test_huge_lock_is_refused_before_parsing() -> None:
    with pytest.raises(LockError, match="the limit is 1000"):
        parse_lock(GOOD + "#" * 2000, max_bytes=1000)
