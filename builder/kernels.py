"""Jupyter kernelspecs for published environments, one Jupyter data directory per namespace.

``<root>/jupyter/<ns>/kernels/<ns>-<name>/kernel.json`` runs the python of the environment's
*current* version; hub user servers put ``<root>/jupyter/<ns>`` on ``JUPYTER_PATH`` for every
namespace they may read. The file is replaced atomically, so a kernel list never sees a
half-written spec; rollback rewrites it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path


def has_ipykernel(prefix: Path) -> bool:
    return any((prefix / "conda-meta").glob("ipykernel-*.json")) or any(
        (prefix / "lib").glob("python3*/site-packages/ipykernel/__init__.py"))


def kernel_dir(jupyter_root: Path, namespace: str, name: str) -> Path:
    return jupyter_root / namespace / "kernels" / f"{namespace}-{name}"


def write_kernelspec(jupyter_root: Path, namespace: str, name: str, number: int,
                     prefix: Path) -> Path | None:
    """Write (or replace) the kernelspec; None when the environment has no ipykernel."""
    if not has_ipykernel(prefix):
        return None
    spec = {
        "argv": [str(prefix / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"],
        "display_name": f"{namespace}/{name} (v{number})",
        "language": "python",
        "env": {"CONDA_PREFIX": str(prefix), "PATH": f"{prefix}/bin:/usr/local/bin:/usr/bin:/bin"},
        "metadata": {"envyard": {"namespace": namespace, "name": name, "version": number}},
    }
    target = kernel_dir(jupyter_root, namespace, name)
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kernel.", dir=target)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(tmp, target / "kernel.json")
    return target / "kernel.json"


def read_kernelspec(jupyter_root: Path, namespace: str, name: str) -> dict[str, object] | None:
    """The kernelspec hub users see for the environment; None when none is published."""
    try:
        spec = json.loads((kernel_dir(jupyter_root, namespace, name) / "kernel.json")
                          .read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def remove_kernelspec(jupyter_root: Path, namespace: str, name: str) -> None:
    shutil.rmtree(kernel_dir(jupyter_root, namespace, name), ignore_errors=True)
