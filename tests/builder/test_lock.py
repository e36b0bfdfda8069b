"""conda-lock.yml: conda-lock's own code reads, rewrites and renders what we write."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from envyard.builder.errors import LockError
from envyard.builder.lock import Lockfile, dump_lock, parse_lock, read_lock, write_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.render import dependency_order, render_explicit
from envyard.builder.spec import read_spec
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


@pytest.mark.parametrize("ours,theirs", [
    ((), ()),
    (("main", "docs"), ("--no-dev-dependencies", "-e", "docs")),
    (("main", "dev", "docs"), ("-e", "docs"))], ids=["default", "no-dev+docs", "docs"])
def test_categories_are_chosen_as_conda_lock_chooses_them(
        our_lock: Path, tmp_path: Path, ours: tuple[str, ...], theirs: tuple[str, ...]) -> None:
    """dev is rendered unless left out, an optional category only when named (before:
    render showed main only, and build installed every category)."""
    import msgspec

    lock = read_lock(our_lock)
    extra = {"toolz": "dev", "numpy": "docs"}
    lock.package = [msgspec.structs.replace(p, category=extra[p.name], optional=True)
                    if p.name in extra else p for p in lock.package]
    python = next(p for p in lock.package if p.name == "python")  # listed under two
    lock.package = [msgspec.structs.replace(python, category="dev", optional=True),
                    *lock.package]
    path = tmp_path / "conda-lock.yml"
    write_lock(lock, path)
    from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file

    rewritten = tmp_path / "rewritten" / "conda-lock.yml"  # header: the dev and docs lines
    rewritten.parent.mkdir()
    write_conda_lock_file(parse_conda_lock_file(path), rewritten, metadata_choices=None)
    assert rewritten.read_text() == path.read_text()
    cli = Path(sys.executable).with_name("conda-lock")
    done = subprocess.run([str(cli), "render", "-k", "explicit", "-p", "linux-64", *theirs,
                           str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    expected = (tmp_path / "conda-linux-64.lock").read_text()
    rendered = render_explicit(lock, "linux-64", *([ours] if ours else []))
    assert rendered == expected
    assert ("/toolz-" in rendered) == ("dev" in (ours or ("main", "dev")))
    assert ("/numpy-" in rendered) == ("docs" in ours)


def test_a_specs_category_is_written_to_its_packages(channel: Path, cache_dir: Path,
                                                    pkgs_dir: Path, tmp_path: Path) -> None:
    """...and a lock whose packages are all optional builds only when they are asked for
    (before: an empty environment, reported built)."""
    from envyard.builder.install import install_lock
    from envyard.builder.spec import parse_spec

    spec = parse_spec("category: docs\ndependencies: [python 3.11.*, toolz]\n")
    lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                      cache_dir=cache_dir))
    assert {(p.category, p.optional) for p in lock.package} == {("docs", True)}
    with pytest.raises(LockError, match="its packages are in docs"):
        install_lock(lock, prefix=tmp_path / "env", platform="linux-64", pkgs_dir=pkgs_dir)
    assert not (tmp_path / "env").exists()
    with pytest.raises(LockError, match="no conda packages"):
        render_explicit(lock, "linux-64")
    built = install_lock(lock, prefix=tmp_path / "env", platform="linux-64",
                         pkgs_dir=pkgs_dir, categories=["main", "docs"])
    assert built.conda_packages == len(lock.package)


def test_plain_string_channels_of_older_locks_are_read(our_lock: Path) -> None:
    """Older conda-lock wrote `channels: [conda-forge]`; conda-lock reads it, so do we
    (before: 'invalid lock', exit 12)."""
    from conda_lock.lockfile import parse_conda_lock_file

    text = our_lock.read_text()
    url = read_lock(our_lock).metadata.channels[0].url
    old = text.replace(f"  - url: {url}\n    used_env_vars: []\n", f"  - {url}\n", 1)
    assert old != text
    path = our_lock.with_name("old-conda-lock.yml")
    path.write_text(old)
    assert parse_conda_lock_file(path).metadata.channels[0].url == url
    assert [c.url for c in read_lock(path).metadata.channels] == [url]
    assert dump_lock(read_lock(path)) == text


def test_a_git_pip_entry_renders_as_conda_lock_renders_it(our_lock: Path,
                                                         tmp_path: Path) -> None:
    """conda-lock writes a git requirement with its commit in `hash.sha256` and its URL in
    `source`; render gives pip `name @ git+...@commit` (before: a bogus `#sha256=<commit>`),
    and a build refuses it with the reason, not 'sha256 is not 64 hex digits'."""
    from envyard.builder.install import check_installable
    from envyard.builder.lock import DependencySource, HashModel, LockedPackage

    lock = read_lock(our_lock)
    commit = "0123456789abcdef0123456789abcdef01234567"
    url = f"git+https://github.com/example/tool.git@{commit}"
    lock.package.append(LockedPackage(
        name="tool", version="1.0", manager="pip", platform="linux-64", url=url,
        hash=HashModel(sha256=commit), source=DependencySource(type="url", url=url)))
    path = tmp_path / "conda-lock.yml"
    write_lock(lock, path)
    cli = Path(sys.executable).with_name("conda-lock")
    done = subprocess.run([str(cli), "render", "-k", "explicit", "-p", "linux-64",
                           str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rendered = render_explicit(read_lock(path), "linux-64")
    assert rendered == (tmp_path / "conda-linux-64.lock").read_text()
    assert f"# pip tool @ {url}\n" in rendered
    with pytest.raises(LockError, match="tool: a version-control requirement"):
        check_installable(read_lock(path), "linux-64", None)


_TEXT = st.text(st.sampled_from("ab1e.-_:/+*'\"#@!&%?{}[],|>=<~ é\t"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(name=_TEXT, version=_TEXT, dep_name=_TEXT, dep=_TEXT, md5=_TEXT)
@example(name="...", version="...", dep_name="...", dep="...x", md5=".../x")  # document end
@example(name="a", version="1", dep_name="", dep="x", md5="\r")  # `? ''`, a line break
def test_the_lock_writer_writes_what_pyyaml_writes(name: str, version: str, dep_name: str,
                                                   dep: str, md5: str) -> None:
    """The direct writer gives PyYAML's bytes for any string, quoting and all (the strings
    a hostile or odd lock may hold: YAML indicators, quotes, numbers, spaces, non-ASCII)."""
    import yaml

    from envyard.builder.lock_writer import lock_text

    package = {"name": name, "version": version, "manager": "conda", "platform": "linux-64",
               "dependencies": {dep_name: dep, **({} if dep else {"zz": ""})},
               "url": f"https://e.org/{name}", "hash": {"md5": md5}, "category": "main",
               "optional": False}
    meta = {"platforms": ["linux-64"]}
    packages = [package, copy.deepcopy(package)]  # two objects: one would be an alias
    expected = yaml.dump({"version": 1, "metadata": meta, "package": packages},
                         Dumper=yaml.SafeDumper,  # conda-lock's: PyYAML's Python emitter
                         sort_keys=False)
    assert lock_text(1, meta, packages) == expected


def test_a_pinned_spec_solves_back_to_its_lock(our_lock: Path, channel: Path,
                                               cache_dir: Path) -> None:
    """``render_pinned`` (the API's …/environment.yml) asks for exactly the locked
    packages: solving it again on the same channel gives every package, version and
    build of the lock, and nothing else."""
    from envyard.builder.render import render_pinned
    from envyard.builder.spec import parse_spec

    lock = read_lock(our_lock)
    text = render_pinned(lock, "linux-64", name="pinned")
    spec = parse_spec(text)
    assert spec.name == "pinned" and "__glibc" not in text
    again = lock_env(spec, LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                       cache_dir=cache_dir))

    def packages(one: Lockfile) -> set[tuple[str, str, str | None]]:
        return {(p.name, p.version, p.build) for p in one.for_platform("linux-64")}

    assert packages(again) == packages(lock)
    with pytest.raises(LockError, match="no platform osx-arm64"):
        render_pinned(lock, "osx-arm64")
