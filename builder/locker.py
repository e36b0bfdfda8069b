"""Spec -> conda-lock.yml: solve every platform, add pip packages, stamp conda-lock's hash.

``--update`` re-locks against the previous lock: every package keeps its locked version
unless it is named, or must move because a named one did. A ``base`` lock is a softer
wish: every package it has is preferred at its locked version wherever the (edited) spec
allows, so adding one package moves only that package and what it needs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envyard.builder.content_hash import content_hash
from envyard.builder.errors import SolveError, SpecError
from envyard.builder.layout import envyard_cache
from envyard.builder.lock import HashModel, LockChannel, LockedPackage, Lockfile, LockMeta
from envyard.builder.network import Network
from envyard.builder.solve import (
    DEFAULT_TIMEOUT,
    SolveRequest,
    query_platforms,
    routed_channels,
    solve,
    solve_all,
)
from envyard.builder.spec import EnvSpec
from envyard.builder.virtual import (
    ASSUMED_KEY,
    SystemRequirements,
    VirtualPackages,
    load_virtual_packages,
)


@dataclass
class LockOptions:
    """How to lock: where to solve, for which platforms, within what time."""

    channels: Sequence[str] = ()
    platforms: Sequence[str] = ()
    virtual: VirtualPackages = field(default_factory=load_virtual_packages)
    #: the system assumed where the spec says nothing of it (a namespace's defaults)
    system: SystemRequirements = field(default_factory=SystemRequirements)
    timeout: float = DEFAULT_TIMEOUT
    cache_dir: Path = field(default_factory=envyard_cache)
    pip_index: str | None = None
    previous: Lockfile | None = None
    update: Sequence[str] = ()
    base: Lockfile | None = None  # keep its versions where the specs allow (minimal change)
    constraints: Sequence[str] = ()  # e.g. the Dask cluster's pins (builder.dask.constraints)
    progress: Callable[[str], None] | None = None
    network: Network = field(default_factory=Network)  # mirrors and credentials


def host_platform() -> str:
    import rattler

    return str(rattler.Subdir.current())  # (``Platform`` is its deprecated name)


def _dependencies(depends: Sequence[str]) -> dict[str, str]:
    deps: dict[str, str] = {}
    for dep in depends:
        parts = dep.split()
        version = parts[1] if len(parts) > 1 else ""
        deps[parts[0]] = f"{deps[parts[0]]},{version}" if deps.get(parts[0]) else version
    return deps


def locked_package(record: Any, platform: str, category: str = "main") -> LockedPackage:
    """One solved rattler record as a conda-lock entry."""
    return LockedPackage(
        category=category, optional=category != "main",
        name=record.name.normalized, version=str(record.version), manager="conda",
        platform=platform, dependencies=_dependencies(record.depends), url=str(record.url),
        hash=HashModel(md5=record.md5.hex() if record.md5 else "",
                       sha256=record.sha256.hex() if record.sha256 else None))


async def query_locked_records(channels: list[str], platform: str, pkgs: list[LockedPackage],
                               cache_dir: Path, network: Network | None = None) -> list[Any]:
    import rattler

    network = network or Network()
    routes = network.routes(channels)
    gateway = rattler.Gateway(cache_dir=cache_dir, client=network.client(routes))
    specs = [f"{p.name} =={p.version} {p.build_string}" for p in pkgs]
    result = await gateway.query(routed_channels(channels, routes),
                                 query_platforms(platform), specs, recursive=False)
    wanted = {(p.name, p.version, p.build_string) for p in pkgs}
    found = {}
    for group in result:
        for r in group:
            key = (r.name.normalized, str(r.version), str(r.build))
            if key in wanted:
                found[key] = r
    Network.restore(list(found.values()), routes)
    return list(found.values())


def package_sizes(lock: Lockfile, platform: str, channels: list[str], cache_dir: Path,
                  network: Network | None = None) -> dict[str, int]:
    """Archive size of each conda package of the lock, from the channels' repodata."""
    pkgs = lock.for_platform(platform, "conda")
    records = asyncio.run(query_locked_records(channels, platform, pkgs, cache_dir, network))
    return {str(r.file_name): int(r.size or 0) for r in records}


def _solve_update(req: SolveRequest, previous: list[LockedPackage], update: set[str],
                  channels: list[str], cache_dir: Path) -> list[Any]:
    """Keep ``previous`` except ``update`` (and, if needed, what depends on it)."""
    unknown = update - {p.name for p in previous}
    if unknown:
        raise SpecError(f"--update {', '.join(sorted(unknown))}: not in the lock")
    old = {p.name: p.version for p in previous}
    bump = [f"{n} >{old[n]}" for n in sorted(update)]
    base_constraints = list(req.constraints)
    dependents = {p.name for p in previous if update & set(p.dependencies)}
    for unlocked, constraints in ((update, bump), (update | dependents, bump), (update, [])):
        keep = [p for p in previous if p.name not in unlocked]
        req.locked = asyncio.run(query_locked_records(channels, req.platform, keep, cache_dir,
                                                      req.network))
        req.constraints = [*base_constraints, *constraints]
        try:
            return solve(req)
        except SolveError:
            if not constraints:
                raise
    raise AssertionError("unreachable")


#: what a name, version or build in a preferred spec may hold: a base lock may have been
#: pushed, and its words become match specs (no brackets, operators or spaces smuggled in)
_PLAIN = re.compile(r"[A-Za-z0-9_.+!-]+")


def _preferred(base: Lockfile | None, platform: str) -> list[str]:
    if base is None:
        return []
    return [f"{p.name} =={p.version} {p.build_string}"
            for p in base.for_platform(platform, "conda")
            if all(_PLAIN.fullmatch(word) for word in (p.name, p.version, p.build_string))]


def lock_env(spec: EnvSpec, opts: LockOptions) -> Lockfile:
    """Solve ``spec`` for every platform and return the lock."""
    channels = list(opts.channels) or list(spec.channels)
    previous_platforms = list(opts.previous.metadata.platforms) \
        if opts.previous and opts.update else []
    platforms = list(opts.platforms) or list(spec.platforms) or previous_platforms \
        or [host_platform()]
    virtual = opts.virtual.with_system(spec.system.over(opts.system))  # the spec's wins
    reqs = [SolveRequest(specs=spec.conda_specs(platform), channels=channels,
                         platform=platform, virtual=virtual, timeout=opts.timeout,
                         cache_dir=opts.cache_dir / "repodata",
                         constraints=list(opts.constraints),
                         prefer=_preferred(opts.base, platform), network=opts.network,
                         report=opts.progress) for platform in platforms]
    if opts.previous is not None and opts.update:
        solved = []
        for req in reqs:
            if opts.progress:
                opts.progress(f"solving {req.platform}")
            prev = opts.previous.for_platform(req.platform, "conda")
            solved.append(_solve_update(req, prev, set(opts.update), channels,
                                        opts.cache_dir / "repodata"))
    else:
        if opts.progress:
            opts.progress(f"solving {', '.join(platforms)}")
        solved = solve_all(reqs)
    packages: list[LockedPackage] = []
    for platform, records in zip(platforms, solved, strict=True):
        conda = [locked_package(r, platform, spec.category) for r in records]
        packages += conda
        pip_specs = spec.pip_specs(platform)
        if pip_specs:
            from envyard.builder.pip_lock import lock_pip

            if opts.progress:
                opts.progress(f"resolving pip packages for {platform}")
            system = next((v.version for v in virtual.for_platform(platform)
                           if v.name in ("__glibc", "__osx")), None)
            packages += lock_pip(pip_specs, conda=conda, platform=platform,
                                 index_url=opts.pip_index, system_version=system,
                                 category=spec.category,
                                 extra_index_urls=spec.pip_repositories, timeout=opts.timeout,
                                 network=opts.network)
    hashes = {p: content_hash(spec, p, channels=channels, virtual=virtual)
              for p in platforms}
    assumed = {ASSUMED_KEY + p: virtual.assumed(p) for p in platforms}
    kept = [p for p in previous_platforms if p not in platforms]
    if kept and opts.previous is not None:  # an update of some platforms keeps the others
        packages += [p for p in opts.previous.package if p.platform in kept]
        hashes |= {p: opts.previous.metadata.content_hash[p] for p in kept
                   if p in opts.previous.metadata.content_hash}
        before = opts.previous.metadata.custom_metadata or {}
        assumed |= {ASSUMED_KEY + p: before[ASSUMED_KEY + p] for p in kept
                    if ASSUMED_KEY + p in before}
        platforms = [*previous_platforms, *(p for p in platforms if p not in kept and
                                            p not in previous_platforms)]
        hashes = {p: hashes[p] for p in platforms if p in hashes}
    meta = LockMeta(content_hash=hashes, channels=[LockChannel(url=c) for c in channels],
                    platforms=platforms, sources=[Path(spec.source).name],
                    custom_metadata=dict(sorted(assumed.items())))
    return Lockfile(metadata=meta, package=packages).sorted()
