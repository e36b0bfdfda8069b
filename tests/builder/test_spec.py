"""environment.yml parsing: real files read, bad files refused with file, line and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envyard.builder.errors import SpecError
from envyard.builder.spec import ChannelPolicy, parse_spec, read_spec
from tests.conftest import CORPUS, REPO

CORPUS_ENVS = sorted(CORPUS.rglob("environment.yml"))


def test_corpus_is_present() -> None:
    assert len(CORPUS_ENVS) >= 12


@pytest.mark.parametrize("path", CORPUS_ENVS,
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_reads_every_corpus_environment(path: Path) -> None:
    spec = read_spec(path)
    assert spec.channels == ("conda-forge",)
    assert spec.nodefaults
    assert spec.conda_specs("linux-64")
    assert all(d.line > 0 for d in spec.conda)


def test_example_envs_parse() -> None:
    files = sorted((REPO / "envs").glob("*.yml"))
    assert files
    for f in files:
        assert read_spec(f).conda


def test_full_spec() -> None:
    text = """\
name: geo
channels: [conda-forge, nodefaults]
platforms: [linux-64, osx-arm64]
variables:
  OMP_NUM_THREADS: 1
dependencies:
  - python=3.11
  - numpy >=1.26
  - pywin32  # [win]
  - libgcc  # [linux]
  - pip:
      - python-slugify==9.2.0
"""
    spec = parse_spec(text, source="geo.yml")
    assert spec.name == "geo"
    assert spec.platforms == ("linux-64", "osx-arm64")
    assert spec.variables == {"OMP_NUM_THREADS": "1"}
    assert spec.conda_specs("linux-64") == ["python=3.11", "numpy >=1.26", "libgcc", "pip"]
    assert spec.conda_specs("osx-arm64") == ["python=3.11", "numpy >=1.26", "pip"]
    assert spec.pip_specs("linux-64") == ["python-slugify==9.2.0"]


BAD = {
    "malformed": ("dependencies: [python\nname: x\n", 2, "invalid YAML"),
    "not-mapping": ("- python\n", 1, "top level must be a mapping"),
    "no-deps": ("name: x\n", 1, "no 'dependencies'"),
    "unknown-key": ("name: x\ndependencis:\n  - python\n", 2, "unknown key 'dependencis'"),
    "bad-name": ("name: ../../etc\ndependencies: [python]\n", 1, "must match"),
    "bad-spec": ("dependencies:\n  - python\n  - 'num$py >=1'\n", 3, "not a valid conda match"),
    "editable-pip": ("dependencies:\n  - python\n  - pip:\n    - -e .\n", 4, "cannot be locked"),
    "url-pip": ("dependencies:\n  - pip:\n    - 'x @ https://e.org/x.whl'\n", 3, "direct URL"),
    "channel-dots": ("channels: [../../tmp/evil]\ndependencies: [python]\n", 1, "not a channel"),
    "duplicate": ("dependencies:\n  - numpy\n  - python\n  - numpy >=2\n", 4, "listed twice"),
    "dict-dep": ("dependencies:\n  - {conda: x}\n", 2, "match spec string or a 'pip:'"),
    "platform": ("platforms: [linux-128]\ndependencies: [python]\n", 1, "unknown platform"),
    "variables": ("variables: [A]\ndependencies: [python]\n", 1, "'variables' must be"),
    "dup-key": ("name: a\nname: b\ndependencies: [python]\n", 2, "duplicate key"),
    "empty": ("", None, "empty"),
    "git-pip": ("dependencies:\n  - pip:\n    - git+https://e.org/x.git@v1\n", 3,
                "version-control requirement cannot be locked"),
    "named-git-pip": ("dependencies:\n  - pip:\n    - 'x @ git+https://e.org/x@abc'\n", 3,
                      "version-control requirement"),
    "hash-pip": ("dependencies:\n  - pip:\n    - x==1.0 --hash=sha256:00\n", 3,
                 "write the requirement without --hash"),
    "url-conda": ("dependencies:\n  - https://e.org/c/noarch/x-1-0.conda\n", 2,
                  "a package URL cannot be locked"),
    "category-list": ("category: [a, b]\ndependencies: [python]\n", 1, "'category' must be"),
    "url-bracket": ("dependencies:\n  - 'x[url=file:///tmp/c/noarch/x-1-0.conda]'\n", 2,
                    "a package URL cannot be locked"),
    "relative-channel": ("channels: [./local]\ndependencies: [python]\n", 1,
                         "absolute directory"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_line_and_reason(case: str) -> None:
    text, line, words = BAD[case]
    with pytest.raises(SpecError) as err:
        parse_spec(text, source="env.yml")
    assert words in str(err.value)
    assert str(err.value).startswith("env.yml")
    assert err.value.line == line


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    bomb += "dependencies: [python]\n"
    with pytest.raises(SpecError, match="YAML nodes"):
        parse_spec(bomb, source="bomb.yml")


def test_huge_file_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text("dependencies:\n" + "  - python\n" * 200_000)
    with pytest.raises(SpecError, match="limit is"):
        read_spec(big)


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin.yml"
    f.write_bytes(b"name: caf\xe9\ndependencies: [python]\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        read_spec(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        read_spec(tmp_path / "nope.yml")


def test_channel_policy() -> None:
    text = "channels: [conda-forge, evil-corp]\ndependencies: [python]\n"
    policy = ChannelPolicy(("conda-forge", "file://*"))
    with pytest.raises(SpecError, match="channel 'evil-corp' is not allowed") as err:
        parse_spec(text, policy=policy)
    assert err.value.line == 1
    ok = parse_spec("channels: [conda-forge]\ndependencies: [python]\n", policy=policy)
    assert ok.channels == ("conda-forge",)


@pytest.mark.parametrize("text", ["python=3.11.7=*_cpython", "python>=3.11=*cpython*",
                                  "tensorflow>=2.17.0=cuda12*", "pytorch=*=*cuda*",
                                  "numpy=1.26", "libblas=*=*mkl", "python 3.11.* *_cpython",
                                  "python=3.11 *_cpython", "python 3.11", "numpy 1.26|1.27",
                                  "python=3.11.7 h0_cpython", "numpy >=1.26,<2"])
def test_name_version_build_reads_as_conda_reads_it(text: str) -> None:
    """conda's `name=ver=build` forms, which the solver's strict reader refuses, reach it
    in a form it reads with conda's meaning (before: the reader passed them, the solve
    failed on 'the build string is not valid')."""
    import rattler
    from conda_lock._vendor.conda.models.match_spec import MatchSpec
    from rattler.package.build_string import BuildString

    (match,) = parse_spec(f"dependencies: ['{text}']\n").conda_specs("linux-64")
    ours, conda = rattler.MatchSpec(match, strict=True), MatchSpec(text)
    name = conda.name
    for version in ("3.11.7", "3.11.0", "3.11", "3.12.1", "2.17.0", "2.18.1", "1.26.4", "1.26",
                    "1.27"):
        for build in ("h0_cpython", "py311_cpython_0", "cuda126_h1", "cpu_h1", "mkl"):
            record = rattler.PackageRecord(name, version, BuildString(build), 0, "linux-64")
            assert ours.matches(record) == conda.match(
                {"name": name, "version": version, "build": build, "build_number": 0}), \
                (match, version, build)


def test_an_empty_category_is_main() -> None:
    assert parse_spec("category: ''\ndependencies: [python]\n").category == "main"


@pytest.mark.parametrize("name", ["team\n", "geo\n", "a" * 64 + "\n"])
def test_a_name_with_a_trailing_newline_is_not_a_name(name: str) -> None:
    """``$`` also matches before a final newline: names are matched whole."""
    with pytest.raises(SpecError, match="must match"):
        parse_spec(f"name: {json.dumps(name)}\ndependencies: [python]\n")


def test_a_variable_name_is_matched_whole() -> None:
    """Before: ``^…$`` also matched before a final newline, so a name 'GEO\\n' passed and
    reached conda-meta/state and the kernelspec's env."""
    with pytest.raises(SpecError, match="not a valid environment variable"):
        parse_spec('dependencies: [python]\nvariables: {"GEO\\n": x}\n')
    assert parse_spec("dependencies: [python]\nvariables: {GEO: x}\n").variables == {
        "GEO": "x"}


@pytest.mark.parametrize("name", ["ENVYARD_SERVER", "JUPYTERHUB_API_URL", "JPY_API_TOKEN",
                                  "LD_PRELOAD", "PYTHONPATH", "https_proxy", "ALL_PROXY",
                                  "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PATH", "PYTHONWARNINGS",
                                  "DASK_GATEWAY__ADDRESS", "JUPYTER_PATH", "R_PROFILE_USER",
                                  "R_LIBS_USER", "BASH_ENV", "NODE_OPTIONS", "PIP_INDEX_URL",
                                  "CONDA_CHANNELS", "SHELLOPTS", "PS4", "JAVA_TOOL_OPTIONS",
                                  "AWS_ENDPOINT_URL", "HF_ENDPOINT", "TAR", "PERLLIB",
                                  "XDG_CONFIG_HOME", "OPENSSL_CONF", "LUA_INIT"])
def test_a_variable_that_reaches_other_users_secrets_is_refused(name: str) -> None:
    """Before: a developer's spec could set ENVYARD_SERVER (or a proxy) in the kernel every
    reader of the namespace starts, and their hub token went to the developer's server."""
    with pytest.raises(SpecError, match=f"variable '{name}' is reserved"):
        parse_spec(f"dependencies: [python]\nvariables: {{{name}: http://evil.example}}\n")


def test_ordinary_variables_pass() -> None:
    spec = parse_spec("dependencies: [python]\nvariables: {OMP_NUM_THREADS: 1, "
                      "CONDA_OVERRIDE_CUDA: '12.4', GDAL_DATA: /x, PYTHONUNBUFFERED: 1}\n")
    assert set(spec.variables) == {"OMP_NUM_THREADS", "CONDA_OVERRIDE_CUDA", "GDAL_DATA",
                                   "PYTHONUNBUFFERED"}
