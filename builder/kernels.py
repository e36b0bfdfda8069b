"""Jupyter kernelspecs for published environments, one Jupyter data directory per namespace.

``<root>/jupyter/<ns>/kernels/<ns>-<name>/kernel.json`` runs the python of the environment's
*current* version (when it has ipykernel), ``<ns>-<name>-r`` its R (when it has
r-irkernel); hub user servers put ``<root>/jupyter/<ns>`` on ``JUPYTER_PATH`` for every
namespace they may read. A file is replaced atomically, so a kernel list never sees a
half-written spec; rollback rewrites them, and removes the kernel a version lacks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from envyard.builder.spec import RESERVED_VARIABLE_RE, VARIABLE_RE

logger = logging.getLogger(__name__)


def has_ipykernel(prefix: Path) -> bool:
    return any((prefix / "conda-meta").glob("ipykernel-*.json")) or any(
        (prefix / "lib").glob("python3*/site-packages/ipykernel/__init__.py"))


def has_irkernel(prefix: Path) -> bool:
    return any((prefix / "conda-meta").glob("r-irkernel-*.json"))


Language = Literal["python", "R"]
LANGUAGES: tuple[Language, ...] = ("python", "R")


def kernel_dir(jupyter_root: Path, namespace: str, name: str,
               language: Language = "python") -> Path:
    suffix = "" if language == "python" else "-r"
    return jupyter_root / namespace / "kernels" / f"{namespace}-{name}{suffix}"


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


def write_kernelspecs(jupyter_root: Path, namespace: str, name: str, number: int,
                      prefix: Path, display: str = DEFAULT_DISPLAY) -> dict[Language, Path]:
    """Write (or replace) the environment's kernelspecs, python when it has ipykernel and
    R when it has r-irkernel, removing the other; each path by language. ``display``
    names them (``{namespace}``, ``{name}``, ``{version}`` replaced; R's with " (R)");
    the spec's variables go into their ``env``, under the prefix's own ``CONDA_PREFIX``
    and ``PATH``."""
    shown = (display.replace("{namespace}", namespace).replace("{name}", name)
             .replace("{version}", str(number)))
    argv = {"python": [str(prefix / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                       "{connection_file}"],
            "R": [str(prefix / "bin" / "R"), "--slave", "-e", "IRkernel::main()", "--args",
                  "{connection_file}"]}
    present = {"python": has_ipykernel(prefix), "R": has_irkernel(prefix)}
    written: dict[Language, Path] = {}
    for language in LANGUAGES:
        target = kernel_dir(jupyter_root, namespace, name, language)
        owner = _owner(target)
        if owner not in (None, (namespace, name, language)):
            # another environment's kernel has this name ('team/foo' R, 'team/foo-r')
            logger.warning("kernel %s of %s/%s not written: the name is %s/%s's",
                           target.name, namespace, name, owner[0], owner[1])
            continue
        if not present[language]:
            shutil.rmtree(target, ignore_errors=True)
            continue
        spec = {
            "argv": argv[language],
            "display_name": shown if language == "python" else f"{shown} (R)",
            "language": language,
            "env": {**environment_variables(prefix), "CONDA_PREFIX": str(prefix),
                    "PATH": f"{prefix}/bin:/usr/local/bin:/usr/bin:/bin"},
            "metadata": {"envyard": {"namespace": namespace, "name": name,
                                     "version": number, "language": language}},
        }
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kernel.", dir=target)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f, indent=1)
        os.replace(tmp, target / "kernel.json")
        written[language] = target / "kernel.json"
    return written


def _read(target: Path) -> dict[str, Any] | None:
    try:
        spec = json.loads((target / "kernel.json").read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def _owner(target: Path) -> tuple[str, str, str] | None:
    """Whose kernel ``target`` holds (namespace, name, language); None: nobody's yet."""
    spec = _read(target)
    meta = ((spec or {}).get("metadata") or {}).get("envyard")
    if not isinstance(meta, dict):
        return None
    return (str(meta.get("namespace")), str(meta.get("name")),
            str(meta.get("language", "python")))


def read_kernelspec(jupyter_root: Path, namespace: str, name: str,
                    language: Language = "python") -> dict[str, object] | None:
    """The kernelspec hub users see for the environment; None when none is published
    (or the name holds another environment's kernel)."""
    target = kernel_dir(jupyter_root, namespace, name, language)
    spec = _read(target)
    return spec if spec is not None and _owner(target) == (namespace, name, language) \
        else None


def remove_kernelspecs(jupyter_root: Path, namespace: str, name: str) -> None:
    """Remove the environment's kernels (never another's that has the same name)."""
    for language in LANGUAGES:
        target = kernel_dir(jupyter_root, namespace, name, language)
        if _owner(target) in (None, (namespace, name, language)):
            shutil.rmtree(target, ignore_errors=True)
