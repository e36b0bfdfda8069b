"""conda-forge package names <-> PyPI distribution names, for all of conda-forge.

A ``pip:`` section is resolved by pip with every Python package conda installed pinned,
and what conda provides is dropped from pip's result; both need each conda package's
PyPI name. conda-forge names differ often (``dask-core`` is PyPI's ``dask``,
``matplotlib-base`` is ``matplotlib``) and most of its packages are not Python
distributions at all (``_openmp_mutex``, ``libgcc``): with only the few differences known,
pip installed ``dask`` over conda's ``dask-core``, and read the pin ``-openmp-mutex==4.5`` as
an option and failed. The map is prefix.dev's parselmouth mapping (the one pixi uses),
shipped as package data (``pypi-names.json``: the names that differ and the packages that
are not Python's); ``refresh`` writes the current upstream one to ``$ENVYARD_HOME``, which
then wins. A name the map does not know is taken as its own PyPI name when it is one.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from envyard.builder.errors import FetchError
from envyard.builder.layout import envyard_home

logger = logging.getLogger(__name__)
UPSTREAM = "https://raw.githubusercontent.com/prefix-dev/parselmouth/main/files/compressed_mapping.json"
LICENSE = "BSD-3-Clause, Copyright (c) 2023, prefix.dev GmbH"
SHIPPED = Path(__file__).with_name("pypi-names.json")
_PYPI_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def refreshed_path() -> Path:
    """Where ``refresh`` writes the upstream map, read before the shipped one."""
    return envyard_home() / "pypi-names.json"


def _valid(data: object) -> bool:
    """The shape ``compact`` writes (a refreshed file may be anything)."""
    if not isinstance(data, dict):
        return False
    names, not_python, same_too = (data.get(k) for k in ("pypi_names", "not_python",
                                                          "same_too"))
    return (isinstance(names, dict) and all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in names.items())
            and isinstance(not_python, list) and all(isinstance(n, str) for n in not_python)
            and isinstance(same_too, list) and all(isinstance(n, str) for n in same_too))


def _load() -> dict[str, Any]:
    """The refreshed map if it is whole, else the shipped one."""
    refreshed = refreshed_path()
    if refreshed.exists():
        try:
            data = json.loads(refreshed.read_text())
            if _valid(data):
                return data  # type: ignore[no-any-return]  # checked by _valid
        except (OSError, ValueError):
            pass
        logger.warning("%s is not a conda -> PyPI name map; using the one shipped with "
                       "envyard (run `envyard pypi-names` to refresh it)", refreshed)
    shipped: dict[str, Any] = json.loads(SHIPPED.read_text())
    return shipped


@functools.cache
def _maps() -> tuple[dict[str, str], frozenset[str], dict[str, str]]:
    """(conda -> PyPI where they differ, conda names that are not Python's, PyPI -> the
    conda package to use for it where that is not the same name)."""
    data = _load()
    differ: dict[str, str] = {k: canonicalize_name(v) for k, v in data["pypi_names"].items()}
    prefer_same = set(data["same_too"])
    reverse: dict[str, str] = {}
    for conda, pypi in sorted(differ.items()):
        if pypi not in prefer_same:
            reverse.setdefault(pypi, conda)
    return differ, frozenset(data["not_python"]), reverse


def pypi_name(conda: str) -> str | None:
    """The PyPI distribution conda package ``conda`` installs, or None when it installs
    none (a library, a compiler, python itself)."""
    differ, not_python, _ = _maps()
    if conda in differ:
        return differ[conda]
    if conda in not_python or not _PYPI_NAME.match(conda):
        return None
    return canonicalize_name(conda)


def conda_name(pypi: str) -> str:
    """The conda-forge package of PyPI distribution ``pypi``: the one of the same name
    where there is one (``dask``, not ``dask-core``), else the first that installs it
    (``msgpack`` is ``msgpack-python``; ``tzdata`` is ``python-tzdata``, as conda-forge's
    ``tzdata`` is the time zone database)."""
    name = canonicalize_name(pypi)
    return _maps()[2].get(name, name)


def compact(mapping: dict[str, str | None]) -> dict[str, object]:
    """The shipped form of an upstream mapping (conda name -> PyPI name or null): the
    names that differ, the packages that are not Python's, and the PyPI names that a
    package of the same name installs too (so the reverse lookup keeps that one)."""
    differ = {k: v for k, v in mapping.items()  # exact: conda's jupyter_client counts
              if v is not None and canonicalize_name(v) != k}
    targets = {canonicalize_name(v) for v in differ.values()}
    same_too = sorted(t for t in targets if (mapping.get(t) or "") and
                      canonicalize_name(mapping[t] or "") == t)
    return {"source": UPSTREAM, "license": LICENSE, "pypi_names": dict(sorted(differ.items())),
            "not_python": sorted(k for k, v in mapping.items() if v is None),
            "same_too": same_too}


def refresh(url: str = UPSTREAM, dest: Path | None = None, *, timeout: float = 60) -> Path:
    """Download the upstream mapping and write its compact form where ``pypi_name``
    reads it first (atomically: a failed refresh leaves the old one)."""
    dest = dest or refreshed_path()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            mapping = json.load(resp)
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot refresh the PyPI name map from {url}: {exc}") from exc
    if not isinstance(mapping, dict) or not mapping or not all(
            isinstance(k, str) and (v is None or isinstance(v, str))
            for k, v in mapping.items()):
        raise FetchError(f"{url} does not hold a conda -> PyPI name mapping (conda name: "
                         "PyPI name or null)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pypi-names.", dir=dest.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(compact(mapping), f, indent=0, separators=(",", ":"))
    os.replace(tmp, dest)
    _maps.cache_clear()
    return dest
