"""A version's pack for each platform its lock covers, made from the lock on first request.

The service installs only its own platform; a user on ``osx-arm64`` gets the same locked
packages as ``builder.lock_pack`` archives them (fetched and verified, never installed).
A pack is made once, from the version's stored lock, with the sources and categories the
version's build used (a pushed lock's packages only from where a pushed lock may fetch),
and kept in the artifact store under a key of the lock's text and the platform, so
versions with the same lock share it and a replica finds what another made.

Making one is bounded like any other work: at most ``SLOTS`` at a time in a small pool,
``PENDING`` distinct packs queued, a request waits ``WAIT`` seconds for its pack and is
then answered 503 with ``Retry-After`` while the work goes on (the next request finds the
pack, or waits again). A failure is forgotten, so a later request tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from envyard.builder.errors import FetchError, Stopped
from envyard.builder.layout import Layout
from envyard.builder.lock import DEFAULT_CATEGORIES, Lockfile
from envyard.builder.lock_pack import pack_lock
from envyard.builder.lock_unpack import FORMAT
from envyard.service.admission import check_space
from envyard.service.errors import NotFound, Unavailable
from envyard.service.inputs import InputRules, checked_spec
from envyard.service.settings import Settings
from envyard.service.storage import ArtifactStore

logger = logging.getLogger("envyard")

SLOTS = 2
PENDING = 8
WAIT = 20.0  # seconds a request waits for its pack before 503


@dataclass(frozen=True)
class Locked:
    """What a pack is made from, read from the version's row (no session in the pool)."""

    number: int
    lock_text: str
    spec_text: str | None  # None: a pushed lock
    rules: InputRules  # the namespace's (``inputs.rules_for``), as its builds read them


def platform_pack_key(lock_text: str, platform: str) -> str:
    """Where a platform pack is stored: one per lock text and platform (the archive is
    reproducible, so the same lock gives the same bytes wherever it is made); GC deletes
    it with the last kept version of that lock."""
    digest = hashlib.sha256(f"{FORMAT}\n{platform}\n{lock_text}".encode()).hexdigest()
    return f"platform-packs/{platform}/{digest}.tar"


def check_platform(lock: Lockfile, platform: str, number: int) -> None:
    """A platform the lock does not cover is a 404 that names those it does."""
    if platform not in lock.metadata.platforms:
        raise NotFound(f"version {number} is locked for {', '.join(lock.metadata.platforms)}"
                       f"; it has no pack for {platform}")


class PlatformPacks:
    """The packs this process is making, shared by the requests that want them."""

    def __init__(self, settings: Settings, store: ArtifactStore) -> None:
        self.settings, self.store = settings, store
        self.layout = Layout(settings.root)
        self._making: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=SLOTS, thread_name_prefix="envyard-platform-pack")

    def close(self) -> None:
        self._closed.set()  # a pack being made stops at its next chunk
        self._pool.shutdown(wait=False, cancel_futures=True)

    def exists(self, key: str) -> bool:
        return self.store.stat(key) is not None

    def _make(self, key: str, version: Locked, lock: Lockfile, platform: str) -> None:
        """Make the pack (the version's sources and categories) and put it in the store."""
        rules = version.rules  # as the build chose its sources (``stages._sources``)
        categories: tuple[str, ...] = DEFAULT_CATEGORIES
        if version.spec_text is None:
            sources = rules.lock_sources(lock)
        else:
            spec = checked_spec(version.spec_text, rules, source="the version's spec")
            sources = self.settings.package_sources(self.settings.spec_channels(spec.channels))
            categories = tuple(dict.fromkeys((*DEFAULT_CATEGORIES, spec.category)))
        local = getattr(self.store, "path", None)
        work = Path(tempfile.mkdtemp(prefix=".platform-pack-", dir=self.settings.root))
        try:
            out = local(key) if self.store.local and local else work / "pack.tar"
            result = pack_lock(lock, platform, out, pkgs_dir=self.layout.pkgs,
                               sources=sources, categories=categories,
                               timeout=self.settings.install_timeout,
                               stop=self._closed.is_set, lock_text=version.lock_text)
            if not self.store.local:
                self.store.put(key, out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        logger.info("platform pack %s: %d conda + %d pip packages, %d bytes in %.1f s",
                    key, result.conda_packages, result.pip_packages, result.bytes,
                    result.seconds)

    async def ensure(self, version: Locked, lock: Lockfile, platform: str) -> str:
        """The store key of the version's pack for ``platform``, made if it is not there;
        503 if it is not ready within ``WAIT`` seconds or too many are being made."""
        check_platform(lock, platform, version.number)
        key = platform_pack_key(version.lock_text, platform)
        if await asyncio.to_thread(self.exists, key):
            return key
        with self._lock:
            future = self._making.get(key)
            if future is None:
                check_space(self.settings)  # a full volume answers 507, as a submission
                if len(self._making) >= PENDING:
                    raise Unavailable(f"busy making {len(self._making)} other packs; retry "
                                      "shortly", retry_after=10)
                future = self._making[key] = self._pool.submit(
                    self._make, key, version, lock, platform)

                def done(_: object) -> None:
                    with self._lock:
                        if self._making.get(key) is future:
                            del self._making[key]

                future.add_done_callback(done)
        waited = asyncio.wrap_future(future)
        waited.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(waited), WAIT)
        except TimeoutError:
            raise Unavailable(f"making the {platform} pack of version {version.number}; "
                              "retry shortly", retry_after=5) from None
        except Stopped:
            raise Unavailable("the service is stopping; retry shortly") from None
        except FetchError as exc:
            logger.warning("platform pack %s: %s", key, exc)
            raise Unavailable(f"the {platform} pack of version {version.number} could not be "
                              f"made: {exc}", retry_after=30) from None
        return key


__all__ = ["PENDING", "SLOTS", "WAIT", "Locked", "PlatformPacks", "check_platform",
           "platform_pack_key"]
