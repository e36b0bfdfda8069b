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

from envyard.builder.spec import RESERVED_VARIABLE_RE, VARIABLE_RE


def has_ipykernel(prefix: Path) -> bool:
    return any((prefix / "conda-meta").glob("ipykernel-*.json")) or any(
        (prefix / "lib").glob("python3*/site-packages/ipykernel/__init__.py"))


def kernel_dir(jupyter_root: Path, namespace: str, name: str) -> Path:
    return jupyter_root / namespace / "kernels" / f"{namespace}-{name}"


DEFAULT_DISPLAY = "{namespace}/{name} (v{version})"


def environment_variables(prefix: Path) -> dict[str, str]:
    """The spec's ``variables:`` as the install recorded them (``conda-meta/state``, where
    ``conda activate`` reads them), so a kernel runs with what activation would set; a
    malformed record gives none, and a reserved name (checked again here: the file is on
    the volume, and older prefixes were parsed by older rules) is dropped."""
    try:
        state = json.loads((prefix / "conda-meta" / "state").read_text())
    except (OSError, ValueError):
        return {}
    found = state.get("env_vars") if isinstance(state, dict) else None
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items()
            if isinstance(k, str) and VARIABLE_RE.fullmatch(k)
            and not RESERVED_VARIABLE_RE.fullmatch(k) and isinstance(v, str)}


def write_kernelspec(jupyter_root: Path, namespace: str, name: str, number: int,
                     prefix: Path, display: str = DEFAULT_DISPLAY) -> Path | None:
    """Write (or replace) the kernelspec; None when the environment has no ipykernel.
    ``display`` names it (``{namespace}``, ``{name}``, ``{version}`` replaced); the spec's
    variables go into its ``env``, under the prefix's own ``CONDA_PREFIX`` and ``PATH``."""
    if not has_ipykernel(prefix):
        return None
    spec = {
        "argv": [str(prefix / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"],
        "display_name": (display.replace("{namespace}", namespace).replace("{name}", name)
                         .replace("{version}", str(number))),
        "language": "python",
        "env": {**environment_variables(prefix), "CONDA_PREFIX": str(prefix),
                "PATH": f"{prefix}/bin:/usr/local/bin:/usr/bin:/bin"},
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
