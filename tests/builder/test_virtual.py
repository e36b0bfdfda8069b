"""The system an environment targets: what a spec says of CUDA, glibc and macOS changes the
solve (a ``torchish`` cuda build where CUDA 12 is assumed, its cpu build elsewhere), the
lock records what it assumed, and the content hash is the one conda-lock computes for the
same assumption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envyard.builder.content_hash import content_hash
from envyard.builder.errors import SpecError
from envyard.builder.lock import Lockfile, dump_lock, read_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec
from envyard.builder.virtual import SystemRequirements, load_virtual_packages
from tests.cuda_channel import cuda_channel, torchish_build

ENVYARD = str(Path(sys.executable).with_name("envyard"))
PLAIN = "dependencies: [torchish]\n"
OVERRIDE = "variables: {CONDA_OVERRIDE_CUDA: '12.4'}\ndependencies: [torchish]\n"
KEYED = "system-requirements: {cuda: '12.4'}\ndependencies: [torchish]\n"
NO_CUDA = "variables: {CONDA_OVERRIDE_CUDA: ''}\ndependencies: [torchish]\n"


@pytest.fixture(scope="module")
def torch_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cuda_channel(tmp_path_factory.mktemp("cuda") / "channel")


def _lock(channel: Path, cache: Path, text: str, **opts: object) -> Lockfile:
    return lock_env(parse_spec(text), LockOptions(channels=[str(channel)],
                                                  platforms=["linux-64"], cache_dir=cache,
                                                  **opts))  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "namespace", "build", "cuda"), [
    (PLAIN, None, "cpu", "11.4"),  # conda-lock's default: CUDA 11.4, too old for the cuda build
    (OVERRIDE, None, "cuda", "12.4"),
    (KEYED, None, "cuda", "12.4"),
    (PLAIN, "12.4", "cuda", "12.4"),  # a namespace's default where the spec says nothing
    (NO_CUDA, "12.4", "cpu", None),  # the spec's own word wins: no CUDA at all
    ("system-requirements: {cuda: '11.8'}\ndependencies: [torchish]\n", "12.4", "cpu", "11.8"),
], ids=["default", "CONDA_OVERRIDE_CUDA", "system-requirements", "namespace-default",
        "spec-says-none-over-namespace", "spec-version-over-namespace"])
def test_what_the_spec_says_of_cuda_changes_the_solve_and_is_recorded(
        torch_channel: Path, tmp_path: Path, text: str, namespace: str | None, build: str,
        cuda: str | None) -> None:
    lock = _lock(torch_channel, tmp_path, text, system=SystemRequirements(cuda=namespace))
    assert torchish_build(dump_lock(lock)) == build
    assumed = (lock.metadata.custom_metadata or {})["envyard.virtual.linux-64"]
    assert assumed.split(",") == sorted(assumed.split(","))
    assert "__glibc=2.28" in assumed and "__archspec=1=x86_64" in assumed
    if cuda is None:
        assert "__cuda" not in assumed
    else:
        assert f"__cuda={cuda}," in assumed
    # written and read back as conda-lock's custom metadata
    path = tmp_path / "conda-lock.yml"
    path.write_text(dump_lock(lock))
    assert read_lock(path).metadata.custom_metadata == lock.metadata.custom_metadata


def test_the_content_hash_changes_with_what_was_assumed(torch_channel: Path,
                                                        tmp_path: Path) -> None:
    hashes = {text: _lock(torch_channel, tmp_path, text).metadata.content_hash["linux-64"]
              for text in (PLAIN, OVERRIDE, NO_CUDA)}
    assert len(set(hashes.values())) == 3
    # the same assumption by another route is the same lock input
    assert _lock(torch_channel, tmp_path, KEYED).metadata.content_hash["linux-64"] == \
        _lock(torch_channel, tmp_path, PLAIN, system=SystemRequirements(cuda="12.4")
              ).metadata.content_hash["linux-64"] == hashes[OVERRIDE]


PLATFORMS = ["linux-64", "osx-64", "osx-arm64", "win-64"]


@pytest.mark.parametrize("cuda", ["12.4", ""], ids=["with-cuda-12.4", "without-cuda"])
def test_cuda_hash_equals_conda_lock_with_cuda(cuda: str, tmp_path: Path) -> None:
    """``CONDA_OVERRIDE_CUDA`` hashes as conda-lock's ``--with-cuda`` (``""``: --without-cuda)."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import default_virtual_package_repodata

    env = tmp_path / "environment.yml"
    env.write_text(f"channels: [conda-forge]\nvariables: {{CONDA_OVERRIDE_CUDA: '{cuda}'}}\n"
                   "dependencies: [python=3.12, pytorch]\n")
    mapping = tmp_path / "mapping.json"
    mapping.write_text("{}")
    ref = compute_content_hashes(make_lock_spec(
        src_files=[env], platform_overrides=PLATFORMS, mapping_url=str(mapping)),
        default_virtual_package_repodata(cuda_version=cuda))
    spec = parse_spec(env.read_text())
    virtual = load_virtual_packages().with_system(spec.system)
    assert {p: content_hash(spec, p, channels=list(spec.channels), virtual=virtual)
            for p in PLATFORMS} == ref


def test_glibc_and_macos_hash_as_conda_lock_with_a_virtual_package_spec(tmp_path: Path
                                                                         ) -> None:
    """Other overrides are what conda-lock reads from a ``--virtual-package-spec`` file."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    env = tmp_path / "environment.yml"
    env.write_text("channels: [conda-forge]\nsystem-requirements: {glibc: '2.17', "
                   "macos: '13.0', cuda: '12.8'}\ndependencies: [python=3.12]\n")
    defaults = load_virtual_packages()
    spec = parse_spec(env.read_text())
    virtual = defaults.with_system(spec.system)
    table = {p: {"packages": {v.name: " ".join(filter(None, (v.version, v.build_string)))
                              for v in virtual.for_platform(p)}} for p in virtual.by_platform}
    assert table["linux-64"]["packages"]["__glibc"] == "2.17"
    assert table["win-64"]["packages"]["__cuda"] == "12.8"
    assert table["osx-arm64"]["packages"]["__osx"] == "13.0"
    assert "__cuda" not in table["osx-64"]["packages"]
    spec_file = tmp_path / "virtual-packages.yaml"
    spec_file.write_text(json.dumps({"subdirs": table}))
    mapping = tmp_path / "mapping.json"
    mapping.write_text("{}")
    ref = compute_content_hashes(make_lock_spec(
        src_files=[env], platform_overrides=PLATFORMS, mapping_url=str(mapping)),
        virtual_package_repo_from_specification(spec_file))
    assert {p: content_hash(spec, p, channels=list(spec.channels), virtual=virtual)
            for p in PLATFORMS} == ref


@pytest.mark.parametrize(("text", "line", "words"), [
    ("system-requirements:\n  rocm: '6.0'\ndependencies: [x]\n", 2,
     "unknown system requirement 'rocm' (known: cuda, glibc, macos)"),
    ("system-requirements:\n  cuda: 12.10\ndependencies: [x]\n", 2,
     "must be a version in quotes"),
    ("system-requirements:\n  glibc: 'newest'\ndependencies: [x]\n", 2,
     "'newest' is not a version like 12.4"),
    ("variables:\n  CONDA_OVERRIDE_CUDA: 'twelve'\ndependencies: [x]\n", 2,
     "variable 'CONDA_OVERRIDE_CUDA': 'twelve' is not a version"),
    ("variables:\n  CONDA_OVERRIDE_CUDA: '12.2'\nsystem-requirements:\n  cuda: '12.4'\n"
     "dependencies: [x]\n", 4,
     "system-requirements cuda '12.4' disagrees with variable CONDA_OVERRIDE_CUDA '12.2' "
     "on line 2"),
    ("system-requirements: [cuda]\ndependencies: [x]\n", 1, "must be a mapping"),
], ids=["unknown-key", "unquoted-decimal", "bad-version", "bad-override", "disagree",
        "not-a-mapping"])
def test_bad_system_requirements_are_errors_with_line_numbers(text: str, line: int,
                                                               words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert err.value.line == line
    assert words in str(err.value)


def test_saying_it_twice_the_same_way_is_fine_and_other_overrides_stay_variables() -> None:
    spec = parse_spec("variables:\n  CONDA_OVERRIDE_CUDA: '12.4'\n  CONDA_OVERRIDE_GLIBC: ''\n"
                      "  CONDA_OVERRIDE_ARCHSPEC: x86_64_v3\nsystem-requirements:\n"
                      "  cuda: '12.4'\n  macos: '13.0'\ndependencies: [x]\n")
    assert spec.system == SystemRequirements(cuda="12.4", glibc="", macos="13.0")
    assert spec.variables["CONDA_OVERRIDE_ARCHSPEC"] == "x86_64_v3"  # reaches the kernel only


def test_a_limit_names_the_package_and_the_limit() -> None:
    SystemRequirements(cuda="12.4").check({"__cuda": "<=12.8"}, "linux-64")
    SystemRequirements(cuda="").check({"__cuda": "<=12.8"}, "linux-64")  # no CUDA: runs anywhere
    SystemRequirements(cuda="13.0").check({"__cuda": "<=12.8"}, "osx-arm64")  # no __cuda there
    with pytest.raises(SpecError, match=r"__cuda 13.0 is not allowed here: this service's "
                       r"builds run __cuda <=12.8"):
        SystemRequirements(cuda="13.0").check({"__cuda": "<=12.8"}, "linux-64")


def test_envyard_lock_on_a_laptop_reads_the_spec(torch_channel: Path, tmp_path: Path) -> None:
    env = tmp_path / "environment.yml"
    env.write_text(KEYED)
    out = tmp_path / "conda-lock.yml"
    done = subprocess.run([ENVYARD, "lock", str(env), "-c", str(torch_channel), "-p",
                           "linux-64", "-o", str(out)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "ENVYARD_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert torchish_build(out.read_text()) == "cuda"
    assert "__cuda=12.4" in (read_lock(out).metadata.custom_metadata or {})[
        "envyard.virtual.linux-64"]
