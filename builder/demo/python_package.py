"""A real, relocatable ``python`` conda package made from the interpreter running envyard.

The interpreter's ELF RUNPATH is an absolute path; it is rewritten in place to one relative
to ``$ORIGIN`` so the package works in any prefix. Text files that name the old prefix are
declared with a prefix placeholder, so rattler rewrites them at install like conda-forge's.
It links against this machine's system libraries: fit for tests on this kind of machine.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from envyard.builder.demo.conda_package import PackageFile, PackageSpec
from envyard.builder.errors import ChannelError

_SKIP_DIRS = {"site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip",
              "lib2to3", "__pycache__", "unittest/test"}


def _is_elf(data: bytes) -> bool:
    return data[:4] == b"\x7fELF"


def _rewrite_runpath(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace the NUL-terminated string ``old`` by ``new`` padded with NULs (same length)."""
    needle = old + b"\x00"
    if len(new) > len(old) or needle not in data:
        return data
    return data.replace(needle, new + b"\x00" * (len(old) - len(new) + 1))


def _file(prefix: Path, path: Path, rel: str, runpath_to: bytes) -> PackageFile:
    if path.is_symlink():
        return PackageFile(rel, symlink_to=os.readlink(path))
    data = path.read_bytes()
    mode = path.stat().st_mode & 0o777
    old = str(prefix).encode()
    if _is_elf(data):
        return PackageFile(rel, _rewrite_runpath(data, old + b"/lib", runpath_to), mode)
    if old in data and b"\x00" not in data[:8192]:
        return PackageFile(rel, data, mode, prefix_placeholder=str(prefix), file_mode="text")
    return PackageFile(rel, data, mode)


def _walk(prefix: Path, top: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(top):
        rel_root = Path(root).relative_to(top).as_posix()
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS
                   and f"{rel_root}/{d}".lstrip("./") not in _SKIP_DIRS]
        for n in names:
            if n.endswith((".a", ".pyc")) or n.startswith(("_test", "xx")):
                continue
            found.append(Path(root) / n)
    return found


def python_package(target_python: str) -> PackageSpec:
    """Describe the ``python`` package for the running interpreter."""
    version = sysconfig.get_python_version()
    if version != target_python:
        raise ChannelError(f"the demo channel is built for CPython {target_python}; "
                           f"this interpreter is {version}")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise ChannelError("the demo channel needs a Python built with a shared libpython")
    prefix = Path(sys.base_prefix)
    files: list[PackageFile] = []
    for name in (f"python{version}", "python3", "python"):
        src = prefix / "bin" / name
        if name == f"python{version}":
            files.append(_file(prefix, src.resolve(), f"bin/{name}", b"$ORIGIN/../lib"))
        else:
            files.append(PackageFile(f"bin/{name}", symlink_to=f"python{version}"))
    libdir = prefix / "lib"
    for lib in sorted(libdir.glob("libpython3*.so*")):
        files.append(_file(prefix, lib, f"lib/{lib.name}", b"$ORIGIN"))
    stdlib = libdir / f"python{version}"
    for path in _walk(prefix, stdlib):
        rel = path.relative_to(prefix).as_posix()
        to = b"$ORIGIN/../.." if "/lib-dynload/" in rel else b"$ORIGIN/../lib"
        files.append(_file(prefix, path, rel, to))
    full = ".".join(str(p) for p in sys.version_info[:3])
    abi = "cp" + version.replace(".", "")
    return PackageSpec("python", full, "henvyard_0_cpython", "linux-64",
                       [f"python_abi {version}.* *_{abi}"], files, license="PSF-2.0")


def python_abi_package(target_python: str) -> PackageSpec:
    """The ``python_abi`` metapackage that binary packages pin, as on conda-forge."""
    abi = "cp" + target_python.replace(".", "")
    return PackageSpec("python_abi", target_python, f"8_{abi}", "linux-64", [],
                       [], build_number=8, constrains=[f"python {target_python}.* *_cpython"])
