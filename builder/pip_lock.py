"""Lock a ``pip:`` section with pip's own resolver, on top of the conda packages already locked.

pip runs as ``pip install --dry-run --report`` for the environment's Python and platform,
with every conda-provided Python package pinned as a constraint; what conda already
provides is dropped from the result. With an index URL given, no pip configuration of the
machine is read, so that index is the only one used; without one, pip's own configuration
(its default index or the user's) applies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from builder.errors import SolveError, SolveTimeout
from builder.lock import HashModel, LockedPackage
from builder.pypi_names import pypi_name

_PLATFORM_TAGS = {
    "linux-64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"],
    "linux-aarch64": ["manylinux_2_28_aarch64", "manylinux_2_17_aarch64",
                      "manylinux2014_aarch64", "linux_aarch64"],
    "osx-64": ["macosx_11_0_x86_64", "macosx_10_15_x86_64", "macosx_10_9_x86_64"],
    "osx-arm64": ["macosx_11_0_arm64"],
    "win-64": ["win_amd64"],
}


def _python_version(conda: Sequence[LockedPackage]) -> str:
    for p in conda:
        if p.name == "python":
            return ".".join(p.version.split(".")[:2])
    raise SolveError("a pip: section needs python in the conda dependencies")


def _constraints(conda: Sequence[LockedPackage]) -> list[str]:
    lines = []
    for p in conda:
        try:
            Version(p.version)
        except InvalidVersion:
            continue
        lines.append(f"{pypi_name(p.name)}=={p.version}")
    return lines


def _marker_env(python: str, platform: str) -> dict[str, str]:
    env = dict(default_environment())
    system = {"linux": "Linux", "osx": "Darwin", "win": "Windows"}[platform.split("-")[0]]
    env.update(python_version=python, sys_platform={"Linux": "linux", "Darwin": "darwin",
                                                    "Windows": "win32"}[system],
               platform_system=system, implementation_name="cpython", extra="")
    return env


def lock_pip(requirements: Sequence[str], *, conda: Sequence[LockedPackage], platform: str,
             index_url: str | None, extra_index_urls: Sequence[str] = (),
             timeout: float = 300) -> list[LockedPackage]:
    """Resolve ``requirements`` and return the pip packages conda does not provide;
    ``extra_index_urls`` are the spec's ``pip-repositories``."""
    python = _python_version(conda)
    provided = {pypi_name(p.name) for p in conda}
    with tempfile.TemporaryDirectory(prefix="envyard-pip-") as tmp:
        reqs, cons, report = (Path(tmp) / n for n in ("req.txt", "con.txt", "report.json"))
        reqs.write_text("\n".join(requirements) + "\n")
        cons.write_text("\n".join(_constraints(conda)) + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--quiet", "--no-input", "--disable-pip-version-check", "--report", str(report),
               "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
               "--abi", "cp" + python.replace(".", ""), "--target", str(Path(tmp) / "target"),
               "-r", str(reqs), "-c", str(cons)]
        for tag in _PLATFORM_TAGS.get(platform, []):
            cmd += ["--platform", tag]
        env = dict(os.environ)
        if index_url:
            cmd += ["--index-url", index_url]
            env["PIP_CONFIG_FILE"] = os.devnull
            for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
                env.pop(var, None)
        for extra in extra_index_urls:
            cmd += ["--extra-index-url", extra]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise SolveTimeout(f"{platform}: pip did not resolve within {timeout:.0f} s") from None
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-12:])
            raise SolveError(f"{platform}: pip cannot resolve the pip: section:\n{tail}")
        installs = json.loads(report.read_text())["install"]
    marker_env = _marker_env(python, platform)
    out = []
    for item in installs:
        meta = item["metadata"]
        name = canonicalize_name(meta["name"])
        if name in provided:
            continue
        deps: dict[str, str] = {}
        for line in meta.get("requires_dist") or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(marker_env):
                deps[canonicalize_name(req.name)] = str(req.specifier) or "*"
        info = item["download_info"]
        sha256 = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        out.append(LockedPackage(name=name, version=meta["version"], manager="pip",
                                 platform=platform, dependencies=deps, url=info["url"],
                                 hash=HashModel(sha256=sha256)))
    return out
