"""Where builds may fetch from when the service names no channels of its own, or a pip
index on disk: never "anywhere"."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from envyard.builder.errors import UnsafeURL
from envyard.builder.fetch import Sources, fetch
from envyard.service.settings import Settings


def test_no_channels_means_nothing_may_be_fetched(tmp_path: Path) -> None:
    """Before: an empty list of channels (the service using each spec's own) allowed
    every URL, so a pushed lock could build any file on the machine into an env."""
    pkg = tmp_path / "elsewhere" / "linux-64" / "secret-1.0-0.conda"
    pkg.parent.mkdir(parents=True)
    pkg.write_bytes(b"secret")
    sources = Settings(root=tmp_path / "volume").package_sources([])
    with pytest.raises(UnsafeURL, match="no channel is configured"):
        fetch(pkg.as_uri(), hashlib.sha256(b"secret").hexdigest(), tmp_path / "pkgs",
              package="secret", sources=sources)
    with pytest.raises(UnsafeURL, match="no channel is configured"):
        fetch(pkg.as_uri(), hashlib.sha256(b"secret").hexdigest(), tmp_path / "pkgs",
              package="secret", sources=Sources())


def test_a_pip_index_on_disk_allows_its_own_folder_only(tmp_path: Path) -> None:
    """Before: `file:///srv/pypi/simple` allowed `file:///`, the whole file system."""
    index = tmp_path / "pypi" / "simple"
    settings = Settings(root=tmp_path / "volume", pip_index=index.as_uri())
    (bases,) = settings.package_sources([]).bases
    assert str(bases) == (tmp_path / "pypi").as_uri()
    other = tmp_path / "other" / "x-1.0-py3-none-any.whl"
    other.parent.mkdir()
    other.write_bytes(b"w")
    with pytest.raises(UnsafeURL, match="not under a channel"):
        fetch(other.as_uri(), hashlib.sha256(b"w").hexdigest(), tmp_path / "pkgs",
              package="x", sources=settings.package_sources([]))
