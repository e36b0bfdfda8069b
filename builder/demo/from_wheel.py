"""Turn a wheel into a conda package, evaluating dependency markers for the target Python.

Pure-Python wheels become ``noarch: python`` packages (files under ``site-packages/``,
console scripts as link.json entry points); binary cp3XX wheels become ``linux-64``
packages that depend on ``python_abi``. A dependency with an environment marker is kept
when the marker holds for the target, never silently dropped.
"""

from __future__ import annotations

import configparser
import hashlib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import cast

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

from envyard.builder.demo.conda_package import PREFIX_PLACEHOLDER, PackageFile, PackageSpec
from envyard.builder.pypi_names import conda_name


@dataclass(frozen=True)
class Target:
    """The interpreter the converted packages are for."""

    python: str = "3.11"
    full_python: str = "3.11.7"
    machine: str = "x86_64"
    subdir: str = "linux-64"

    @property
    def abi_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    def marker_env(self) -> dict[str, str]:
        # every field of packaging's Environment is a str
        env = cast(dict[str, str], dict(default_environment()))
        env.update(python_version=self.python, python_full_version=self.full_python,
                   sys_platform="linux", platform_system="Linux", os_name="posix",
                   platform_machine=self.machine, implementation_name="cpython",
                   platform_python_implementation="CPython", extra="")
        return env


def _conda_dep(req: Requirement) -> str:
    spec = ",".join(sorted(str(s) for s in req.specifier))
    return f"{conda_name(req.name)} {spec}".strip()


def _requires(metadata: str, target: Target) -> tuple[list[str], str | None]:
    msg = Parser().parsestr(metadata)
    env = target.marker_env()
    deps = []
    for line in msg.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        deps.append(_conda_dep(req))
    return deps, msg.get("Requires-Python")


def _entry_points(text: str) -> list[str]:
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    if not parser.has_section("console_scripts"):
        return []
    return [f"{k.strip()} = {v.strip()}" for k, v in parser.items("console_scripts")]


def _script(entry: str) -> PackageFile:
    name, target = (p.strip() for p in entry.split("=", 1))
    module, func = target.split(":", 1)
    body = (f"#!{PREFIX_PLACEHOLDER}/bin/python\n"
            f"import sys\nfrom {module} import {func.split('.')[0]}\n"
            f"if __name__ == '__main__':\n    sys.exit({func}())\n")
    return PackageFile(f"bin/{name}", body.encode(), 0o755, prefix_placeholder=PREFIX_PLACEHOLDER)


def convert_wheel(wheel: Path, target: Target) -> PackageSpec:
    """Read a wheel and describe the conda package it becomes."""
    dist, version, _, tags = parse_wheel_filename(wheel.name)
    pure = all(t.abi == "none" and t.platform == "any" for t in tags)
    site = "site-packages" if pure else f"lib/python{target.python}/site-packages"
    data_prefix = "-".join(wheel.name.split("-")[:2]) + ".data/"
    files: list[PackageFile] = []
    metadata = entry_text = ""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name, data = info.filename, zf.read(info)
            mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
            if name.endswith(".dist-info/METADATA"):
                metadata = data.decode()
            elif name.endswith(".dist-info/entry_points.txt"):
                entry_text = data.decode()
            elif name.endswith(".dist-info/INSTALLER"):
                data = b"conda\n"
            if name.startswith(data_prefix):
                kind, _, rest = name[len(data_prefix):].partition("/")
                if kind in ("purelib", "platlib"):
                    files.append(PackageFile(f"{site}/{rest}", data, mode))
                elif kind == "data":
                    files.append(PackageFile(rest, data, mode))
                elif kind == "scripts":
                    script = data
                    if script.startswith(b"#!python"):
                        script = f"#!{PREFIX_PLACEHOLDER}/bin/python".encode() + script[8:]
                    where = "python-scripts" if pure else "bin"
                    files.append(PackageFile(f"{where}/{rest}", script, 0o755,
                                             prefix_placeholder=PREFIX_PLACEHOLDER
                                             if script != data else None))
                continue
            files.append(PackageFile(f"{site}/{name}", data, mode))
    deps, requires_python = _requires(metadata, target)
    entry_points = _entry_points(entry_text) if entry_text else []
    name = conda_name(dist)
    if pure:
        py = f"python {requires_python.replace(' ', '')}" if requires_python else "python"
        return PackageSpec(name, str(version), "pyhd8ed1ab_0", "noarch", [py, *deps], files,
                           noarch="python", entry_points=entry_points)
    digest = hashlib.sha1(wheel.name.encode()).hexdigest()[:7]
    py_major_minor = target.python
    upper = py_major_minor.split(".")[0] + "." + str(int(py_major_minor.split(".")[1]) + 1)
    depends = [f"python >={py_major_minor},<{upper}.0a0",
               f"python_abi {py_major_minor}.* *_{target.abi_tag}", *deps]
    files += [_script(e) for e in entry_points]
    return PackageSpec(name, str(version), f"py{target.abi_tag[2:]}h{digest}_0", target.subdir,
                       depends, files)
