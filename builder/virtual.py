"""Virtual packages per platform (``__glibc``, ``__osx`` …): conda-lock's defaults or a spec file.

A lock is solved for a platform the builder may not be running on, so the system's
packages are assumed, not detected, exactly as conda-lock does; the same table feeds the
solver and the content hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envyard.builder.errors import SpecError
from envyard.builder.yamlfile import load_yaml, plain

if TYPE_CHECKING:
    from rattler import GenericVirtualPackage

DEFAULTS_FILE = Path(__file__).with_name("virtual-packages.yaml")
_EPOCH_2020_MS = 1577854800000


@dataclass(frozen=True)
class VirtualPackage:
    name: str
    version: str
    build_string: str = ""


@dataclass(frozen=True)
class VirtualPackages:
    """The virtual packages of every platform, and whether they are conda-lock's defaults."""

    by_platform: dict[str, tuple[VirtualPackage, ...]]
    is_default: bool

    def for_platform(self, platform: str) -> tuple[VirtualPackage, ...]:
        return self.by_platform.get(platform, ())

    def to_rattler(self, platform: str) -> list[GenericVirtualPackage]:
        import rattler
        from rattler.package.build_string import BuildString

        return [rattler.GenericVirtualPackage(rattler.PackageName(v.name),
                                              rattler.Version(v.version),
                                              BuildString(v.build_string or "0"))
                for v in self.for_platform(platform)]

    def hash_repodata(self, platform: str) -> dict[str, object]:
        """The fake repodata conda-lock folds into its content hash for ``platform``."""
        pkgs = list(self.for_platform(platform))
        if self.is_default and platform == "osx-64":
            pkgs.append(VirtualPackage("__osx", "10.15"))
        packages: dict[str, object] = {}
        for v in pkgs:
            build = f"{v.build_string}_0" if v.build_string else "0"
            packages[f"{v.name}-{v.version}-{build}.tar.bz2"] = {
                "name": v.name, "version": v.version, "build_string": v.build_string,
                "build_number": 0, "noarch": "", "depends": [], "timestamp": _EPOCH_2020_MS,
                "package_type": "virtual_system", "build": build, "subdir": platform}
        subdir: dict[str, object] = {"info": {"subdir": platform}, "packages": packages}
        return {"noarch": {"info": {"subdir": "noarch"}, "packages": {}}, platform: subdir}


def load_virtual_packages(path: Path | None = None) -> VirtualPackages:
    """Read a conda-lock style virtual-packages.yaml (``subdirs: {P: {packages: {...}}}``)."""
    source = path or DEFAULTS_FILE
    try:
        data = plain(load_yaml(source.read_bytes(), source=str(source)))
    except OSError as exc:
        raise SpecError(f"cannot read virtual package spec: {exc.strerror}",
                        source=str(source)) from exc
    subdirs = data.get("subdirs") if isinstance(data, dict) else None
    if not isinstance(subdirs, dict):
        raise SpecError("expected 'subdirs: {PLATFORM: {packages: {__name: version}}}'",
                        source=str(source))
    out: dict[str, tuple[VirtualPackage, ...]] = {}
    for platform, body in subdirs.items():
        packages = body.get("packages") if isinstance(body, dict) else None
        if not isinstance(packages, dict):
            raise SpecError(f"'{platform}' needs a 'packages' mapping", source=str(source))
        items = []
        for name, spec in packages.items():
            if not str(name).startswith("__"):
                raise SpecError(f"{name} is not a virtual package (must start with __)",
                                source=str(source))
            version, _, build = str(spec).partition(" ")
            items.append(VirtualPackage(str(name), version, build))
        out[str(platform)] = tuple(items)
    return VirtualPackages(out, is_default=path is None)
