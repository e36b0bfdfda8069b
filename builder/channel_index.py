"""A channel's package names and their newest versions, for a package picker.

Read through rattler's gateway (the repodata, and the cache, a solve reads) for one
channel and platform (with noarch), within a time limit: an unreachable channel is an
``IndexUnreachable`` after ``timeout`` seconds, never a hang. Matching is on the names
alone: those starting with the pattern first, then those containing it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envyard.builder.aio import run_with_timeout
from envyard.builder.errors import IndexUnreachable
from envyard.builder.network import Network
from envyard.builder.solve import query_platforms, routed_channels

#: Versions kept per name: the newest, newest first.
KEEP = 5
#: Names asked of the gateway at a time: one query of every name of a channel costs
#: rattler time that grows faster than the names (100,000 names: 55 s, in 500s: 3 s).
CHUNK = 500


@dataclass(frozen=True)
class ChannelIndex:
    """One channel's names (sorted) and each name's newest versions (newest first)."""

    channel: str
    platform: str
    names: tuple[str, ...]
    versions: dict[str, tuple[str, ...]]

    def match(self, pattern: str, limit: int) -> tuple[list[str], list[str]]:
        """Names starting with ``pattern`` and, after them, names containing it elsewhere
        (each list sorted, together at most ``limit``); ``pattern`` is lowercase, as
        rattler's normalised names are."""
        start = bisect.bisect_left(self.names, pattern)
        prefixed: list[str] = []
        for name in self.names[start:]:
            if not name.startswith(pattern) or len(prefixed) == limit:
                break
            prefixed.append(name)
        inside: list[str] = []
        if len(prefixed) < limit:
            want = limit - len(prefixed)
            for name in self.names:
                if pattern in name and not name.startswith(pattern):
                    inside.append(name)
                    if len(inside) == want:
                        break
        return prefixed, inside


def is_platform(name: str) -> bool:
    """Whether ``name`` is a conda platform (subdir) rattler knows."""
    import rattler

    return name in {str(p) for p in rattler.Subdir.all()}


def read_channel_index(channel: str, platform: str, *, cache_dir: Path, timeout: float,
                       keep: int = KEEP, network: Network | None = None) -> ChannelIndex:
    """Every package name of ``channel`` for ``platform`` and noarch, with its ``keep``
    newest versions (by conda's version ordering), read through ``network``'s mirrors
    with its credentials."""
    import rattler

    subdirs = list(dict.fromkeys(query_platforms(platform)))
    network = network or Network()

    async def read() -> Any:
        routes = network.routes([channel])
        gateway = rattler.Gateway(cache_dir=cache_dir, client=network.client(routes))
        source = routed_channels([channel], routes)
        names = [n.normalized for n in await gateway.names(source, subdirs)]
        return [group for start in range(0, len(names), CHUNK)
                for group in await gateway.query(source, subdirs, names[start:start + CHUNK],
                                                 recursive=False)]

    try:
        result = run_with_timeout(read, timeout=timeout, on_timeout=lambda: IndexUnreachable(
            f"channel {channel}: its package index did not arrive within {timeout:.0f} s"))
    except IndexUnreachable:
        raise
    except Exception as exc:  # rattler's fetch errors: a connection refused, a 404, bad JSON
        text = network.redact(str(exc).strip().splitlines()[0]) if str(exc).strip() \
            else type(exc).__name__
        raise IndexUnreachable(f"channel {channel}: cannot read its package index: "
                               f"{text}") from None
    found: dict[str, set[Any]] = {}
    for group in result:
        for record in group:
            found.setdefault(record.name.normalized, set()).add(record.version)
    versions = {name: tuple(str(v) for v in sorted(vs, reverse=True)[:keep])
                for name, vs in found.items()}
    return ChannelIndex(channel, platform, tuple(sorted(versions)), versions)


__all__ = ["KEEP", "ChannelIndex", "is_platform", "read_channel_index"]
