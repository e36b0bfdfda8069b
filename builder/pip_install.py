"""Install locked wheels into a prefix with ``installer`` (no pip needed inside the env).

Scripts get a shebang naming the prefix's final Python, so a prefix built in a staging
directory works once it is renamed into place.
"""

from __future__ import annotations

from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from envyard.builder.errors import InstallError


def install_wheel(wheel: Path, *, staging: Path, final_prefix: Path, python: str) -> None:
    """Unpack ``wheel`` into ``staging`` laid out as a conda prefix for ``python`` (X.Y)."""
    site = f"lib/python{python}/site-packages"
    scheme = {"purelib": site, "platlib": site, "scripts": "bin", "data": "",
              "headers": f"include/python{python}"}
    dest = SchemeDictionaryDestination(
        {k: str(staging / v) for k, v in scheme.items()},
        interpreter=str(final_prefix / "bin" / "python"), script_kind="posix",
        bytecode_optimization_levels=())
    try:
        with WheelFile.open(wheel) as source:
            install(source, dest, {"INSTALLER": b"envyard\n"})
    except Exception as exc:
        raise InstallError(f"{wheel.name}: could not install the wheel: {exc}") from exc
