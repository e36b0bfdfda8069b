"""Our content hash equals conda-lock's: against its own code and the hashes in real locks."""

from __future__ import annotations

from pathlib import Path

import pytest

from envyard.builder.content_hash import conda_dependency, content_hash
from envyard.builder.lock import read_lock
from envyard.builder.spec import read_spec
from envyard.builder.virtual import load_virtual_packages
from tests.conftest import CORPUS, REPO

BASE_ENVS = sorted((CORPUS / "pangeo-base-notebook").rglob("environment.yml"))


@pytest.mark.parametrize("path", BASE_ENVS, ids=lambda p: p.parent.name)
def test_matches_hash_conda_lock_wrote_into_the_corpus(path: Path) -> None:
    spec = read_spec(path)
    want = read_lock(path.parent / "conda-lock.yml").metadata
    virtual = load_virtual_packages()
    got = {p: content_hash(spec, p, channels=list(spec.channels), virtual=virtual)
           for p in want.platforms}
    assert got == want.content_hash


SPECS = ["python=3.12", "python 3.12", "python==3.12", "python>=3.9,<3.12", "numpy 1.2.*",
         "pytorch>=2.7.0=cuda12*", "conda-forge::numpy>=1", "x=1.2=py_0", "dask",
         "numpy>1|<0.5", "a[version='>=1']", "b=1.0.*", "pangeo-notebook=2026.01.21",
         "x 1.2 py_0", "python_abi 3.11.* *_cp311", "numpy!=1.0", "x~=1.2", "x>=01.02"]


@pytest.fixture(scope="module")
def conda_lock_parse():  # type: ignore[no-untyped-def]
    from conda_lock.src_parser.conda_common import conda_spec_to_versioned_dep

    return conda_spec_to_versioned_dep


@pytest.mark.parametrize("spec", SPECS)
def test_match_spec_serialised_like_conda(spec: str, conda_lock_parse) -> None:  # type: ignore[no-untyped-def]
    ref = conda_lock_parse(spec, "main").model_dump()
    ours = conda_dependency(spec, "main")
    assert {k: ours[k] for k in ref if k != "markers"} == {k: v for k, v in ref.items()
                                                           if k != "markers"}


ENV_WITH_EVERYTHING = """\
name: everything
channels: [conda-forge, bioconda, nodefaults]
dependencies:
  - python=3.11
  - numpy >=1.26,<3
  - conda-forge::pandas
  - pywin32  # [win]
  - libgcc  # [linux]
  - pip:
      - python-slugify==9.2.0
      - Text_Unidecode>=1.0; python_version >= "3.8"
"""


@pytest.mark.filterwarnings("ignore:Marker:UserWarning")
@pytest.mark.parametrize("text", [
    ENV_WITH_EVERYTHING,
    "channels: [/srv/channels/team, conda-forge]\ndependencies: [python=3.11, numpy]\n",
    "category: dev\ndependencies: [python=3.12=*_cpython, numpy]\n",
], ids=["selectors+pip+channel", "channel-directory", "category+name=ver=build"])
def test_equals_conda_lock_compute_content_hashes(text: str, tmp_path: Path) -> None:
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import default_virtual_package_repodata

    env = tmp_path / "environment.yml"
    env.write_text(text)
    mapping = tmp_path / "mapping.json"  # local, so conda-lock does not go online
    mapping.write_text("{}")
    platforms = ["linux-64", "osx-64", "osx-arm64", "win-64"]
    ref = compute_content_hashes(
        make_lock_spec(src_files=[env], platform_overrides=platforms, mapping_url=str(mapping)),
        default_virtual_package_repodata())
    spec = read_spec(env)
    virtual = load_virtual_packages()
    ours = {p: content_hash(spec, p, channels=list(spec.channels), virtual=virtual)
            for p in platforms}
    assert ours == ref


def test_example_envs_hash_like_conda_lock(tmp_path: Path) -> None:
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import default_virtual_package_repodata

    mapping = tmp_path / "mapping.json"
    mapping.write_text("{}")
    for env in sorted((REPO / "envs").glob("*.yml")):
        ref = compute_content_hashes(make_lock_spec(
            src_files=[env], platform_overrides=["linux-64"], mapping_url=str(mapping)),
            default_virtual_package_repodata())
        spec = read_spec(env)
        assert content_hash(spec, "linux-64", channels=list(spec.channels),
                            virtual=load_virtual_packages()) == ref["linux-64"], env.name
