"""Lock -> prefix: verified packages hardlinked from the shared cache, published atomically.

The prefix is built in a staging directory beside the target with the *target's* path
baked into its files (rattler's ``alternative_target_prefix``), then renamed into place:
the target is either absent, the old complete env, or the new complete env; never half.
A prefix remembers the lock it was built from, so rebuilding an identical lock is a no-op.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from envyard.builder import records
from envyard.builder.aio import run_with_timeout
from envyard.builder.errors import EnvyardError, HashMismatch, InstallError, LockError
from envyard.builder.fetch import (
    Deadline,
    Sources,
    check_url,
    counted_fetcher,
    package_cache_lock,
    reverify,
)
from envyard.builder.layout import guard_of, temp_beside, temps_of
from envyard.builder.lock import DEFAULT_CATEGORIES, LockedPackage, Lockfile, no_packages_in
from envyard.builder.pip_install import install_wheel
from envyard.builder.pkgcache import check_extracted, forget, restamp

STAMP = "conda-meta/envyard/lock.json"
DEFAULT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class InstallResult:
    prefix: Path
    platform: str
    fingerprint: str
    reused: bool
    conda_packages: int
    pip_packages: int
    seconds: float


def fingerprint(lock: Lockfile, platform: str, variables: dict[str, str] | None = None,
                categories: Sequence[str] = DEFAULT_CATEGORIES) -> str:
    """Identity of what a lock installs on ``platform``: every package's URL and sha256, and
    the name, version and build the lock gives it. The names count because a prefix with
    this identity is reused unchecked: a lock relabelling the archives of a built one must
    be installed (and its names checked against the archives), not handed that prefix."""
    items = sorted(f"{p.manager} {p.name} {p.version} {p.conda_build} {p.url} {p.hash.sha256}"
                   for p in lock.for_platform(platform)
                   if p.category in categories)  # every entry, as before categories counted
    items += [f"var {k}={v}" for k, v in sorted((variables or {}).items())]
    return hashlib.sha256("\n".join([platform, *items]).encode()).hexdigest()


def installed_fingerprint(prefix: Path) -> str | None:
    try:
        fp: str | None = json.loads((prefix / STAMP).read_text()).get("fingerprint")
        return fp
    except (OSError, ValueError):
        return None


Progress = Callable[[str, int, int], None]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def check_installable(lock: Lockfile, platform: str, sources: Sources | None = None,
                      categories: Sequence[str] = DEFAULT_CATEGORIES) -> None:
    """Refuse, before anything is fetched, a lock that cannot give a verified environment
    for ``platform``: no packages for it (in ``categories``), a package twice, a sha256
    that is missing or not one, a URL outside ``sources`` (``check_url``), a package
    listed twice with different files. The service runs this at push time and every
    install runs it again."""
    if platform not in lock.metadata.platforms:
        raise LockError(f"the lock has no packages for {platform} (it has: "
                        f"{', '.join(lock.metadata.platforms)}); re-lock with -p {platform}")
    packages = lock.for_platform(platform)
    if not any(p.manager == "conda" for p in packages):
        raise LockError(f"the lock lists {platform} but no conda packages for it")
    if not lock.selected(platform, "conda", categories=categories):
        raise LockError(no_packages_in(lock, platform, categories))
    seen: dict[tuple[str, str], tuple[str, str | None]] = {}
    for p in packages:  # conda-lock repeats a package once per category: same file
        if seen.setdefault((p.manager, p.name), (p.url, p.hash.sha256)) != (p.url,
                                                                            p.hash.sha256):
            raise LockError(f"{p.name}: listed twice for {platform} with different files")
        if p.manager == "pip" and p.url.split("+", 1)[0] in ("git", "hg", "svn", "bzr"):
            raise LockError(f"{p.name}: a version-control requirement ({p.url.split('@')[0]}"
                            "); envyard installs only wheels whose sha256 the lock records: "
                            "build a wheel and lock it from an index")
        if not p.hash.sha256:
            raise LockError(f"{p.name}: the lock records no sha256; envyard installs only "
                            "packages it can verify")
        if not _SHA256_RE.fullmatch(p.hash.sha256):
            raise LockError(f"{p.name}: its sha256 is not 64 lower-case hex digits")
        check_url(p.url, p.name, sources)


async def _link(archives: list[Path], locked: list[LockedPackage], staging: Path,
                final: Path, cache: Path, progress: Progress | None) -> None:
    """rattler links ``archives``; each is read once more to make its record, and the
    sha256 rattler computes then must still be the lock's: the cache is keyed by file name,
    so a concurrent build fetching a same-named package from another channel could have
    replaced the file since it was verified. The record (the archive's own
    ``info/index.json``) must also be the package the lock names: a pushed lock that
    calls distributed 2026.1.2 "2025.12.0" would pass the Dask check, the package index
    and every diff on a name and version that are not what is installed."""
    import rattler

    class Reporter(rattler.InstallerReporter):
        """Counts linked packages for the progress display; every other event keeps the
        protocol's no-op default."""

        linked = 0

        def on_link_complete(self, index: int) -> None:
            self.linked += 1
            if progress:
                progress("link", self.linked, len(archives))

    records = await asyncio.gather(*map(rattler.RepoDataRecord.from_package_archive, archives))
    for archive, record, p in zip(archives, records, locked, strict=True):
        if record.sha256 is None or record.sha256.hex() != p.hash.sha256:
            raise HashMismatch(f"{archive.name} changed in the package cache after it was "
                               "verified")
        actual = (record.name.normalized, str(record.version), str(record.build))
        if (p.name.lower(), p.version, p.conda_build or actual[2]) != actual:
            raise LockError(f"{p.name[:100]} {p.version[:100]}: the lock names its package "
                            f"wrongly; {archive.name} is {actual[0]} {actual[1]} "
                            f"(build {actual[2]})")
    await rattler.install(records, target_prefix=staging, cache_dir=cache,
                          alternative_target_prefix=final, execute_link_scripts=False,
                          reporter=Reporter())  # type: ignore[abstract]  # no-op defaults


def _python_version(conda: list[LockedPackage]) -> str | None:
    for p in conda:
        if p.name == "python":
            return ".".join(p.version.split(".")[:2])
    return None


def _publish(staging: Path, prefix: Path) -> None:
    """Rename ``staging`` to ``prefix``, swapping out an old prefix if there is one."""
    if prefix.exists() or prefix.is_symlink():
        old = temp_beside(prefix, "old")
        prefix.rename(old)
        staging.rename(prefix)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(prefix)


def install_lock(lock: Lockfile, *, prefix: Path, platform: str, pkgs_dir: Path,
                 force: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 variables: dict[str, str] | None = None,
                 progress: Progress | None = None,
                 sources: Sources | None = None,
                 stop: Callable[[], bool] | None = None,
                 categories: Sequence[str] = DEFAULT_CATEGORIES,
                 shared_records: bool = False) -> InstallResult:
    """Build ``prefix`` from the ``platform`` part of ``lock`` (the packages of
    ``categories``, as ``conda-lock install``); reuse it if already built.

    Every package URL is checked (``builder.fetch.check_url``) against ``sources`` before
    anything is fetched. ``timeout`` bounds fetching and linking together; ``stop()``,
    asked between download chunks, ends a fetch early (``Stopped``). ``shared_records``:
    the prefix will never be changed, so its conda-meta records may be hard links shared
    with other prefixes (``builder.records``). Builds of one prefix
    are serialised by a lock file beside it; the holder removes staging directories that
    a killed build left behind.
    """
    prefix = prefix.expanduser().absolute()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with guard_of(prefix).open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        for kind in ("staging", "old"):
            for stale in temps_of(prefix, kind):
                shutil.rmtree(stale, ignore_errors=True)
        return _install(lock, prefix, platform, pkgs_dir, force, timeout, variables or {},
                        progress, sources, stop, categories, shared_records)


def _install(lock: Lockfile, prefix: Path, platform: str, pkgs_dir: Path, force: bool,
             timeout: float, variables: dict[str, str],
             progress: Progress | None, sources: Sources | None,
             stop: Callable[[], bool] | None, categories: Sequence[str],
             shared_records: bool) -> InstallResult:
    start = time.perf_counter()
    deadline = Deadline(time.monotonic() + timeout, stop)
    check_installable(lock, platform, sources, categories)
    conda = lock.selected(platform, "conda", categories=categories)
    pip = lock.selected(platform, "pip", categories=categories)
    fp = fingerprint(lock, platform, variables, categories)
    if installed_fingerprint(prefix) == fp:
        return InstallResult(prefix, platform, fp, True, len(conda), len(pip),
                             time.perf_counter() - start)
    if prefix.exists() and not force:
        raise InstallError(f"{prefix} exists and holds another environment; "
                           "pass --force to replace it")
    if prefix.exists() and not (prefix / "conda-meta").is_dir():
        raise InstallError(f"{prefix} exists and is not a conda environment; "
                           "refusing to replace it")
    fetched = counted_fetcher(pkgs_dir, sources, deadline, len(conda) + len(pip), progress)

    staging = temp_beside(prefix, "staging")
    with package_cache_lock(pkgs_dir, shared=True):
        return _fetch_and_link(conda, pip, fetched, staging, prefix, platform, pkgs_dir, fp,
                               deadline, variables, progress, start, shared_records)


def _link_budget(deadline: Deadline) -> float:
    left = deadline.left("linking")
    if left <= 0:
        raise InstallError("the install's time limit passed before linking began")
    return left


class _LinkFailed(Exception):
    """Linking failed; ``recheck``: because extracted packages were bad and are removed,
    so linking again (rattler extracts them anew) can succeed."""

    def __init__(self, error: Exception, *, recheck: bool = False) -> None:
        self.error = error
        self.recheck = recheck


def _link_verified(archives: list[Path], locked: list[LockedPackage], staging: Path,
                   prefix: Path, pkgs_dir: Path, timeout: float,
                   progress: Progress | None) -> None:
    """Link ``archives`` into ``staging`` from extracted packages checked against their
    ``paths.json`` (``builder.pkgcache``); raises ``_LinkFailed`` when rattler fails."""
    check_extracted(archives)
    try:
        run_with_timeout(lambda: _link(archives, locked, staging, prefix,
                                       pkgs_dir / "extracted", progress),
                         timeout=timeout, on_timeout=lambda: InstallError(
                             f"linking did not finish within {timeout:.0f} s"))
    except InstallError:
        raise
    except Exception as exc:
        raise _LinkFailed(exc) from exc
    bad = restamp(archives)
    if bad:
        raise _LinkFailed(HashMismatch(f"extracted packages did not match their paths.json: "
                                       f"{', '.join(bad)}"), recheck=True)


def _fetch_and_link(conda: list[LockedPackage], pip: list[LockedPackage],
                    fetched: Callable[[LockedPackage], Path], staging: Path, prefix: Path,
                    platform: str, pkgs_dir: Path, fp: str, deadline: Deadline,
                    variables: dict[str, str], progress: Progress | None,
                    start: float, shared_records: bool) -> InstallResult:
    with ThreadPoolExecutor(max_workers=8) as pool:
        conda_files = list(pool.map(fetched, conda))
        wheel_files = list(pool.map(fetched, pip))
    try:
        try:
            _link_verified(conda_files, conda, staging, prefix, pkgs_dir,
                           _link_budget(deadline), progress)
        except _LinkFailed as failed:
            # an archive may have changed under its sidecar: hash them all, fetch again
            # what does not match, and try once more; else the failure stands
            bad = [(p, f) for p, f in zip(conda, conda_files, strict=True)
                   if not reverify(f, p.hash.sha256 or "")]
            if not bad and not failed.recheck:
                raise failed.error from None
            for _, f in bad:
                forget(f)
            conda_files = [fetched(p) if (p, f) in bad else f
                           for p, f in zip(conda, conda_files, strict=True)]
            shutil.rmtree(staging, ignore_errors=True)
            _link_verified(conda_files, conda, staging, prefix, pkgs_dir,
                           _link_budget(deadline), progress)
        if wheel_files:
            python = _python_version(conda)
            if python is None:
                raise InstallError("pip packages need python among the conda packages")
            for i, wheel in enumerate(wheel_files, 1):
                install_wheel(wheel, staging=staging, final_prefix=prefix, python=python)
                if progress:
                    progress("pip", i, len(wheel_files))
        if shared_records:
            records.share(staging / "conda-meta", records.store_of(pkgs_dir))
        (staging / STAMP).parent.mkdir(parents=True, exist_ok=True)
        if variables:  # where `conda activate` reads an environment's variables
            (staging / "conda-meta" / "state").write_text(json.dumps({"env_vars": variables}))
        (staging / STAMP).write_text(json.dumps({"fingerprint": fp, "platform": platform}))
        _publish(staging, prefix)
    except EnvyardError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"could not build {prefix}: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return InstallResult(prefix, platform, fp, False, len(conda), len(pip),
                         time.perf_counter() - start)


