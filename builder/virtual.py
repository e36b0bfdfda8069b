"""Virtual packages per platform (``__glibc``, ``__osx`` …): conda-lock's defaults or a spec file,
with what an environment says of the system it targets laid over them.

A lock is solved for a platform the builder may not be running on, so the system's
packages are assumed, not detected, exactly as conda-lock does; the same table feeds the
solver and the content hash. A spec (``CONDA_OVERRIDE_CUDA`` under ``variables:``, or
``system-requirements: {cuda: "12.4"}``) or a namespace (a GPU team) replaces one of them
for the platforms it exists on (``SystemRequirements``); the lock records what was assumed
under ``metadata.custom_metadata`` as ``envyard.virtual.<platform>`` (``assumed``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from envyard.builder.errors import SpecError
from envyard.builder.yamlfile import load_yaml, plain

if TYPE_CHECKING:
    from rattler import GenericVirtualPackage

DEFAULTS_FILE = Path(__file__).with_name("virtual-packages.yaml")
_EPOCH_2020_MS = 1577854800000

#: What an environment may say of its target system: the key (``system-requirements:``,
#: as pixi names them), the virtual package it sets and the platforms that package exists on
SYSTEM_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cuda": ("__cuda", ("linux-", "win-")),
    "glibc": ("__glibc", ("linux-",)),
    "macos": ("__osx", ("osx-",)),
}
#: conda's variables for the same (read as conda reads them: an empty value, no package)
OVERRIDE_VARIABLES = {"CONDA_OVERRIDE_CUDA": "cuda", "CONDA_OVERRIDE_GLIBC": "glibc",
                      "CONDA_OVERRIDE_OSX": "macos"}
#: ``custom_metadata`` key prefix of a lock's assumed virtual packages (+ the platform)
ASSUMED_KEY = "envyard.virtual."
_VERSION_RE = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6}){0,3}")


def system_version(key: str, value: str) -> str:
    """``value`` as the version of system requirement ``key`` (``""``: absent), or a
    ``ValueError`` saying what is expected: plain dotted numbers, so what is assumed is
    never more than a version (it is written into the lock and compared with limits)."""
    if key not in SYSTEM_KEYS:
        raise ValueError(f"unknown system requirement '{key}' (known: "
                         f"{', '.join(SYSTEM_KEYS)})")
    value = value.strip()
    if value and not _VERSION_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a version like 12.4 (or empty for none)")
    return value


@dataclass(frozen=True)
class SystemRequirements:
    """What an environment says its target system has: per key a version, ``""`` (the
    package is absent: no CUDA), or None (not said: the layer below decides)."""

    cuda: str | None = None
    glibc: str | None = None
    macos: str | None = None

    @classmethod
    def of(cls, values: Mapping[str, str | None] | None) -> SystemRequirements:
        """From a mapping of keys to versions; a ``ValueError`` names a bad key or version."""
        checked: dict[str, str | None] = {}
        for key, value in (values or {}).items():
            try:
                checked[key] = None if value is None else system_version(key, value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}" if key in SYSTEM_KEYS else str(exc)) from None
        return cls(**checked)

    def said(self) -> dict[str, str]:
        """The keys given a value (a version or ``""``), in ``SYSTEM_KEYS`` order."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def over(self, below: SystemRequirements) -> SystemRequirements:
        """These values where said, ``below``'s elsewhere (a spec over its namespace's)."""
        return replace(below, **self.said())

    def package(self, key: str, platform: str) -> tuple[str, str] | None:
        """(virtual package, version said) of ``key`` if said and it exists on ``platform``."""
        value = getattr(self, key)
        name, prefixes = SYSTEM_KEYS[key]
        if value is None or not platform.startswith(prefixes):
            return None
        return name, value

    def check(self, limits: Mapping[str, str], platform: str) -> None:
        """Refuse a version said for ``platform`` outside ``limits`` (virtual package ->
        version spec, a service's ``virtual_packages_allowed``): a ``SpecError`` naming
        the package, the version and the limit. Saying a package is absent always passes."""
        import rattler

        for key in self.said():
            found = self.package(key, platform)
            if found is None or not found[1] or found[0] not in limits:
                continue
            name, version = found
            if not rattler.VersionSpec(limits[name]).matches(rattler.Version(version)):
                raise SpecError(f"{name} {version} is not allowed here: this service's "
                                f"builds run {name} {limits[name]} (setting "
                                "virtual_packages_allowed)")

    def __str__(self) -> str:
        return ", ".join(f"{k}={v or '(none)'}" for k, v in self.said().items()) or "none"


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

    def with_system(self, system: SystemRequirements) -> VirtualPackages:
        """These packages with ``system``'s in place of theirs, on the platforms each
        exists on; an empty version removes the package (``CONDA_OVERRIDE_CUDA=""``).
        A CUDA version alone keeps the table conda-lock's defaults (``--with-cuda``), so
        the content hash stays the one conda-lock computes; glibc or macOS make it a spec
        file's."""
        said = system.said()
        if not said:
            return self
        table: dict[str, tuple[VirtualPackage, ...]] = {}
        for platform, packages in self.by_platform.items():
            items = list(packages)
            for key in said:
                found = system.package(key, platform)
                if found is None:
                    continue
                name, version = found
                at = next((i for i, v in enumerate(items) if v.name == name), len(items))
                items[at:at + 1] = [VirtualPackage(name, version)] if version else []
            table[platform] = tuple(items)
        return VirtualPackages(table, is_default=self.is_default and set(said) <= {"cuda"})

    def assumed(self, platform: str) -> str:
        """What a lock for ``platform`` assumed, as recorded in its ``custom_metadata``:
        ``name=version`` (``name=version=build`` with a build) by name, comma-separated,
        e.g. ``__archspec=1=x86_64,__cuda=12.4,__glibc=2.28,__linux=5.10,__unix=0``."""
        return ",".join(sorted("=".join(filter(None, (v.name, v.version, v.build_string)))
                               for v in self.for_platform(platform)))

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
