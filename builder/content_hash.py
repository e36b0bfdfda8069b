"""conda-lock's content hash of a spec, computed without importing conda-lock.

conda-lock hashes, per platform, the JSON of its parsed spec (channels, dependencies sorted by
manager and name) together with the virtual-package repodata it solved against. A lock that
carries the same hash is one conda-lock itself considers up to date (``--check-input-hash``).
tests/builder/test_content_hash.py checks equality against conda-lock's own code.
"""

from __future__ import annotations

import hashlib
import json
import re

from envyard.builder.spec import EnvSpec
from envyard.builder.virtual import VirtualPackages


def _version_text(spec: str, build: str | None) -> str:
    """The version part as conda's MatchSpec keeps it (``=1.2`` -> ``1.2.*``), not re-normalised."""
    rest = re.sub(r"\[.*\]$", "", spec.split("::")[-1].strip())
    bracket = re.search(r"version=['\"]([^'\"]+)['\"]", spec)
    if bracket:
        return bracket.group(1)
    rest = re.sub(r"^[A-Za-z0-9_.\-]+", "", rest).strip()
    if build and (rest.endswith("=" + build) or rest.endswith(" " + build)):
        rest = rest[: -len(build) - 1].strip()
    if rest.startswith("=="):
        return rest[2:].strip()
    if rest.startswith("=") and not rest.startswith(("=>", "=<")):
        rest = rest[1:]
        return rest if build or rest.endswith("*") else rest + ".*"
    return re.sub(r"\s+", "", rest)


def conda_dependency(spec: str, category: str) -> dict[str, object]:
    """One conda match spec the way conda-lock serialises it (a ``VersionedDependency``)."""
    import rattler

    ms = rattler.MatchSpec(spec)
    build = str(ms.build) if ms.build is not None else None
    return {"name": ms.name.normalized if ms.name else spec, "manager": "conda",
            "category": category, "extras": [],
            "version": _version_text(spec, build) if ms.version is not None else "",
            "build": build,
            "conda_channel": ms.channel.name if ms.channel is not None else None, "hash": None}


def pip_dependency(spec: str, category: str) -> dict[str, object]:
    """One pip requirement the way conda-lock serialises it."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    req = Requirement(spec)
    dep: dict[str, object] = {
        "name": canonicalize_name(req.name), "manager": "pip", "category": category,
        "extras": sorted(req.extras), "version": str(req.specifier) or "*", "build": None,
        "conda_channel": None, "hash": None}
    if req.marker is not None:
        dep["markers"] = str(req.marker)
    return dep


def _serialized(spec: EnvSpec, platform: str, channels: list[str],
                virtual: VirtualPackages) -> dict[str, object]:
    deps = [conda_dependency(d.spec, spec.category) for d in spec.conda
            if d.applies_to(platform)]
    pips = [pip_dependency(d.spec, spec.category) for d in spec.pip if d.applies_to(platform)]
    if spec.pip:
        pips.append({"name": "pip", "manager": "conda", "category": "main", "extras": [],
                     "version": "*", "build": None, "conda_channel": None, "hash": None})
    content: dict[str, object] = {
        "channels": [json.dumps({"url": c, "used_env_vars": []}, separators=(",", ":"))
                     for c in channels],
        "specs": sorted(deps + pips, key=lambda d: (d["manager"], d["name"])),
    }
    if spec.pip_repositories:
        content["pip_repositories"] = [json.dumps({"url": r}, separators=(",", ":"))
                                       for r in spec.pip_repositories]
    content["virtual_package_hash"] = virtual.hash_repodata(platform)
    return content


def content_hash(spec: EnvSpec, platform: str, *, channels: list[str],
                 virtual: VirtualPackages) -> str:
    """The sha256 conda-lock writes under ``metadata.content_hash[platform]``."""
    text = json.dumps(_serialized(spec, platform, channels, virtual), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
