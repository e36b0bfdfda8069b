"""Package search over the configured channels, for a package picker: each channel's
names and newest versions (``builder.channel_index``) kept in memory per channel and
platform, read off the event loop, refreshed after ``package_index_seconds``.

A name is taken from the first channel that has it, as a build takes it (channels are
in priority order). A channel is read once however many requests want it (they share the
read); a request waits for a read at most ``WAIT`` seconds and is then answered 503 with
``Retry-After`` while the read goes on (it is bounded by ``package_index_timeout``); an
index past its age is still answered while its refresh runs. A channel that cannot be
read is a 503 that names it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
import time
from typing import Any

from envyard.builder.channel_index import ChannelIndex, read_channel_index
from envyard.builder.errors import IndexUnreachable
from envyard.service.errors import Invalid, Unavailable
from envyard.service.settings import Settings

logger = logging.getLogger("envyard")

#: Seconds a request waits for a channel's index being read before it is answered 503.
WAIT = 10.0
PATTERN_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")

Key = tuple[str, str]  # channel, platform


class PackageSearch:
    """The per-channel indexes of one service process."""

    def __init__(self, settings: Settings, cache_dir: Any) -> None:
        self.channels = list(settings.default_channels)
        self.network = settings.network
        self.ttl = settings.package_index_seconds
        self.timeout = settings.package_index_timeout
        self.cache_dir = cache_dir
        self._ready: dict[Key, tuple[float, ChannelIndex]] = {}
        self._reading: dict[Key, concurrent.futures.Future[ChannelIndex]] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="envyard-channel-index")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _read(self, key: Key) -> ChannelIndex:
        start = time.monotonic()
        try:
            index = read_channel_index(key[0], key[1], cache_dir=self.cache_dir,
                                       timeout=self.timeout, network=self.network)
        except IndexUnreachable as exc:  # (a refresh has no request to tell)
            logger.warning("package search: %s", exc)
            raise
        logger.info("package index of %s (%s): %d names in %.1f s", key[0], key[1],
                    len(index.names), time.monotonic() - start)
        with self._lock:
            self._ready[key] = (time.monotonic() + self.ttl, index)
        return index

    def _reading_of(self, key: Key) -> concurrent.futures.Future[ChannelIndex]:
        """The read of ``key`` in progress, started if there is none (call under the lock)."""
        future = self._reading.get(key)
        if future is None:
            future = self._reading[key] = self._pool.submit(self._read, key)

            def done(_: object) -> None:
                with self._lock:
                    if self._reading.get(key) is future:
                        del self._reading[key]

            future.add_done_callback(done)
        return future

    async def index(self, channel: str, platform: str) -> ChannelIndex:
        """The index of one channel: the one in memory (refreshed in the background once
        past its age), else the read's result within ``WAIT`` seconds."""
        key = (channel, platform)
        with self._lock:
            ready = self._ready.get(key)
            if ready is not None and ready[0] > time.monotonic():
                return ready[1]
            future = self._reading_of(key)
        if ready is not None:
            return ready[1]  # stale while its refresh runs
        waited = asyncio.wrap_future(future)
        # a read that outlives this request still ends in an outcome someone looked at
        waited.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(waited), WAIT)
        except TimeoutError:
            raise Unavailable(f"reading the package index of channel {channel} "
                              f"({platform}); retry shortly", retry_after=5) from None
        except IndexUnreachable as exc:
            raise Unavailable(str(exc), retry_after=30) from None

    async def search(self, pattern: str, platform: str, limit: int) -> list[dict[str, Any]]:
        """Names matching ``pattern`` over every channel, those starting with it first
        (the exact name before all), each from the first channel that has it."""
        if not PATTERN_RE.fullmatch(pattern):
            raise Invalid("search: part of a package name (letters, digits, '.', '_', '-'; "
                          "at most 100)")
        pattern = pattern.lower()
        indexes = await asyncio.gather(*(self.index(c, platform) for c in self.channels))
        seen: dict[str, tuple[int, ChannelIndex]] = {}
        for index in indexes:
            prefixed, inside = index.match(pattern, limit)
            for rank, names in ((0, prefixed), (1, inside)):
                for name in names:
                    seen.setdefault(name, (0 if name == pattern else rank + 1, index))
        best = sorted(seen.items(), key=lambda item: (item[1][0], item[0]))[:limit]
        return [{"name": name, "channel": index.channel,
                 "latest": index.versions[name][0], "versions": list(index.versions[name])}
                for name, (_, index) in best]


__all__ = ["WAIT", "PackageSearch"]
