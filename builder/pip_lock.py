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
from typing import cast

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envyard.builder.errors import SolveError, SolveTimeout
from envyard.builder.lock import HashModel, LockedPackage
from envyard.builder.network import Network, strip_auth
from envyard.builder.pypi_names import pypi_name

_ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64", "linux-ppc64le": "ppc64le",
         "osx-64": "x86_64", "osx-arm64": "arm64"}
_WINDOWS = {"win-64": "win_amd64", "win-arm64": "win_arm64", "win-32": "win32"}
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int(x) if x.isdigit() else 0 for x in version.split(".")[:2]]
    return parts[0], parts[1] if len(parts) > 1 else 0


def platform_tags(platform: str, system: str | None) -> list[str]:
    """The wheel platform tags pip may pick for ``platform``, newest first, from the
    system the lock assumes (its ``__glibc`` or ``__osx`` virtual package): a wheel built
    for a newer glibc than the lock's would not run where the lock says it does."""
    if platform in _WINDOWS:
        return [_WINDOWS[platform]]
    arch = _ARCH.get(platform)
    if arch is None:
        raise SolveError(f"{platform}: envyard does not know which wheels run there; lock "
                         "its pip: section for another platform")
    if platform.startswith("linux"):
        major, minor = _major_minor(system or "2.17")
        tags = []
        for m in range(minor if major == 2 else 17, 4, -1):
            tags.append(f"manylinux_2_{m}_{arch}")
            if m in _LEGACY_MANYLINUX:
                tags.append(f"{_LEGACY_MANYLINUX[m]}_{arch}")
        return [*tags, f"linux_{arch}"]
    major, minor = _major_minor(system or "11.0")
    versions = [(v, 0) for v in range(major, 10, -1)]
    versions += [(10, m) for m in range(15 if major > 10 else minor, 8, -1)]
    return [f"macosx_{v}_{m}_{a}" for v, m in versions for a in (arch, "universal2")
            if v >= 11 or arch != "arm64" or a == "universal2"]


def _python_version(conda: Sequence[LockedPackage]) -> str:
    for p in conda:
        if p.name == "python":
            return ".".join(p.version.split(".")[:2])
    raise SolveError("a pip: section needs python in the conda dependencies")


def _constraints(conda: Sequence[LockedPackage]) -> list[str]:
    """A pin for every Python distribution conda installs (under its PyPI name); conda's
    other packages (``_openmp_mutex``, ``libgcc``, python itself) are no concern of pip's."""
    lines = []
    for p in conda:
        name = pypi_name(p.name)
        if name is None:
            continue
        try:
            Version(p.version)
        except InvalidVersion:
            continue
        lines.append(f"{name}=={p.version}")
    return lines


def _explanation(stdout: str, stderr: str) -> str:
    """What pip says about a failure: its errors, then its conflict explanation ("The
    conflict is caused by: ...", which pip prints with its progress, not its errors);
    bounded, without the progress lines."""
    errors = [line for line in stderr.strip().splitlines() if line.strip()]
    progress = stdout.splitlines()
    start = next((i for i, line in enumerate(progress)
                  if line.startswith("The conflict is caused by")), len(progress))
    lines = errors + [line for line in progress[start:] if line.strip()]
    if any("(constraint)" in line for line in lines):
        lines.insert(0, "(a constraint is a package conda installs: change it among the "
                        "conda dependencies, not in pip:)")
    return "\n".join(lines[:60]) + ("\n..." if len(lines) > 60 else "")


def _marker_env(python: str, platform: str) -> dict[str, str]:
    # every field of packaging's Environment is a str
    env = cast(dict[str, str], dict(default_environment()))
    system = {"linux": "Linux", "osx": "Darwin", "win": "Windows"}[platform.split("-")[0]]
    env.update(python_version=python, sys_platform={"Linux": "linux", "Darwin": "darwin",
                                                    "Windows": "win32"}[system],
               platform_system=system, implementation_name="cpython", extra="")
    return env


def lock_pip(requirements: Sequence[str], *, conda: Sequence[LockedPackage], platform: str,
             index_url: str | None, extra_index_urls: Sequence[str] = (),
             system_version: str | None = None, category: str = "main",
             timeout: float = 300, network: Network | None = None) -> list[LockedPackage]:
    """Resolve ``requirements`` and return the pip packages conda does not provide;
    ``extra_index_urls`` are the spec's ``pip-repositories``, ``system_version`` the
    glibc (or macOS) version the lock assumes. The index is read with ``network``'s
    credential for it (pip takes basic auth only, in the URL); the lock's URLs and any
    error never carry it."""
    network = network or Network()
    python = _python_version(conda)
    provided = {name for p in conda if (name := pypi_name(p.name)) is not None}
    with tempfile.TemporaryDirectory(prefix="envyard-pip-") as tmp:
        reqs, cons, report = (Path(tmp) / n for n in ("req.txt", "con.txt", "report.json"))
        reqs.write_text("\n".join(requirements) + "\n")
        cons.write_text("\n".join(_constraints(conda)) + "\n")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--no-input", "--disable-pip-version-check", "--report", str(report),
               "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
               "--abi", "cp" + python.replace(".", ""), "--target", str(Path(tmp) / "target"),
               "-r", str(reqs), "-c", str(cons)]
        for tag in platform_tags(platform, system_version):
            cmd += ["--platform", tag]
        env = dict(os.environ)
        if index_url:
            cmd += ["--index-url", network.pip_index_url(index_url)]
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
            raise SolveError(f"{platform}: pip cannot resolve the pip: section:\n"
                             + network.redact(_explanation(done.stdout, done.stderr)))
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
                                 platform=platform, dependencies=deps, url=strip_auth(info["url"]),
                                 hash=HashModel(sha256=sha256), category=category,
                                 optional=category != "main"))
    return out
