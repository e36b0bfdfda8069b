"""PyPI distribution names <-> conda-forge package names, where they differ."""

from __future__ import annotations

from packaging.utils import canonicalize_name

#: PyPI name -> conda-forge name, for the packages whose names differ.
CONDA_NAMES = {
    "msgpack": "msgpack-python",
    "jupyter-client": "jupyter_client",
    "jupyter-core": "jupyter_core",
    "typing-extensions": "typing_extensions",
    "stack-data": "stack_data",
    "pure-eval": "pure_eval",
    "importlib-metadata": "importlib-metadata",
    "torch": "pytorch",
}
PYPI_NAMES = {v: k for k, v in CONDA_NAMES.items()}


def conda_name(pypi_name: str) -> str:
    """The conda-forge name of a PyPI distribution."""
    name = canonicalize_name(pypi_name)
    return CONDA_NAMES.get(name, name)


def pypi_name(conda: str) -> str:
    """The PyPI name a conda package provides (its own name unless listed)."""
    return canonicalize_name(PYPI_NAMES.get(conda, conda))
