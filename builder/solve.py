"""Solve conda match specs with rattler: per platform, with a time limit and readable conflicts.

A solve either returns records or raises what went wrong, as the user reads it:
``SolveError`` with rattler's explanation of the conflict, ``SolveTimeout`` when the limit
passes (it never hangs), ``SpecError`` for a match spec rattler cannot read, and
``IndexUnreachable`` (a fetch error) when a channel's index cannot be read.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from envyard.builder.aio import run_with_timeout
from envyard.builder.errors import (
    EnvyardError,
    IndexUnreachable,
    SolveError,
    SolveTimeout,
    SpecError,
)
from envyard.builder.layout import envyard_cache
from envyard.builder.network import Network, Report
from envyard.builder.virtual import VirtualPackages

if TYPE_CHECKING:
    from rattler.platform.subdir import SubdirLiteral

DEFAULT_TIMEOUT = 300.0


def channel_url(channel: str) -> str:
    """A channel as rattler takes it: names and URLs unchanged, local paths as file:// URLs."""
    if "://" in channel:
        return channel
    path = Path(channel)
    if channel.startswith((".", "/", "~")) or path.is_dir():
        return path.expanduser().resolve().as_uri()
    return channel


def channel_base_url(channel: str) -> str:
    """The URL a channel's packages live under (names resolve as rattler and conda do)."""
    import rattler

    return str(rattler.Channel(channel_url(channel)).base_url).rstrip("/")


def query_platforms(platform: str) -> list[SubdirLiteral]:
    """``platform`` and noarch, the subdirs a solve or query reads (typed as rattler's subdir
    names; rattler itself rejects a name it does not know)."""
    return [cast("SubdirLiteral", platform), "noarch"]


@dataclass
class SolveRequest:
    """What to solve: specs on channels for one platform."""

    specs: Sequence[str]
    channels: Sequence[str]
    platform: str
    virtual: VirtualPackages
    locked: Sequence[Any] = ()
    #: packages to keep where the specs allow (``name ==version build``): the solver
    #: prefers them to newer ones, so an edit moves only what it must
    prefer: Sequence[str] = ()
    constraints: Sequence[str] = ()
    timeout: float = DEFAULT_TIMEOUT
    cache_dir: Path = field(default_factory=lambda: envyard_cache() / "repodata")
    #: mirrors and credentials the index is read with; ``report`` hears of mirrors
    network: Network = field(default_factory=Network)
    report: Report | None = None


def _clean(message: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", message).strip()


def routed_channels(channels: Sequence[str], routes: dict[str, str]) -> list[Any]:
    """rattler channels for ``channels``, each read where ``Network.routes`` sends it."""
    import rattler

    out = []
    for c in channels:
        base = channel_base_url(c) + "/"
        used = routes.get(base, base)
        out.append(rattler.Channel(channel_url(c) if used == base else used))
    return out


async def _solve(req: SolveRequest, gateway: Any, routes: dict[str, str]) -> list[Any]:
    import rattler

    channels = routed_channels(req.channels, routes)
    locked = [*req.locked, *await _preferred(req, channels, gateway)]
    records = await rattler.solve(
        sources=channels, specs=list(req.specs), gateway=gateway,
        platforms=query_platforms(req.platform), locked_packages=locked or None,
        virtual_packages=req.virtual.to_rattler(req.platform),
        timeout=datetime.timedelta(seconds=req.timeout),
        constraints=list(req.constraints) or None)
    Network.restore(records, routes)
    return records


async def _preferred(req: SolveRequest, channels: list[Any], gateway: Any) -> list[Any]:
    """The records of ``req.prefer`` still on the channels (one that was removed is not
    kept), read through the solve's own gateway so its repodata is loaded once."""
    if not req.prefer:
        return []
    wanted = {tuple(spec.replace("==", "").split()) for spec in req.prefer}
    groups = await gateway.query(channels, query_platforms(req.platform), list(req.prefer),
                                 recursive=False)
    return [r for group in groups for r in group
            if (r.name.normalized, str(r.version), str(r.build)) in wanted]


def _error(req: SolveRequest, exc: BaseException) -> EnvyardError:
    """rattler's failure as the user reads it: a conflict, a malformed match spec, a
    channel that cannot be read, a timeout, or another error (a conflict naming
    ``async-timeout`` is still a conflict)."""
    if isinstance(exc, EnvyardError):
        return exc
    name = type(exc).__name__
    text = req.network.redact(_clean(str(exc)))
    refused = re.search(r"\b(401|403) (Unauthorized|Forbidden)", text)
    if refused:
        return IndexUnreachable(
            f"{req.platform}: a channel refused to serve its index ({refused.group(0)}): "
            f"the service has no credentials for it, or they are wrong: {text}")
    timed_out = text.startswith("Solve operation has been cancelled")  # rattler's words
    if name == "SolverError" and not timed_out:
        return SolveError(f"{req.platform}: the specs cannot be satisfied:\n{text}")
    if "MatchSpec" in name:
        return SpecError(f"{req.platform}: a match spec cannot be read: {text}")
    if "error sending request" in text or name in ("GatewayError", "FetchRepoDataError"):
        return IndexUnreachable(f"{req.platform}: cannot read the channels' package index: "
                                f"{text}")
    if timed_out or "timeout" in name.lower():
        return SolveTimeout(f"{req.platform}: the solve ran out of time "
                            f"({req.timeout:.0f} s): {text}")
    return SolveError(f"{req.platform}: could not solve ({name}): {text}")


def solve(req: SolveRequest) -> list[Any]:
    """Solve one platform; return rattler ``RepoDataRecord``s sorted by name."""
    return solve_all([req])[0]


def solve_all(reqs: Sequence[SolveRequest]) -> list[list[Any]]:
    """Solve several platforms at once, each result as ``solve`` gives it: one gateway, so
    repodata every platform reads (noarch) is loaded once, and the solves run side by side
    (rattler solves off the GIL). The first platform that fails raises its error."""
    import rattler

    if not reqs:
        return []
    for req in reqs:
        if not req.channels:
            raise SolveError("no channels to solve against: list some under 'channels:' "
                             "or pass --channel")

    async def run() -> list[list[Any] | BaseException]:
        first = reqs[0]  # every platform of a lock is solved on the same channels
        routes = first.network.routes(first.channels, "noarch", first.report)
        gateway = rattler.Gateway(cache_dir=first.cache_dir, client=first.network.client(routes))
        return await asyncio.gather(*(_solve(r, gateway, routes) for r in reqs),
                                    return_exceptions=True)

    limit = max(r.timeout for r in reqs)
    results = run_with_timeout(  # each solve has its limit; together, what they had in turn
        run, timeout=sum(r.timeout for r in reqs) + 5,
        on_timeout=lambda: SolveTimeout(
            f"{', '.join(r.platform for r in reqs)}: the solve took longer than "
            f"{limit:.0f} s and was stopped; narrow the specs (pin versions) or raise the "
            "limit"))
    out = []
    for req, result in zip(reqs, results, strict=True):
        if isinstance(result, BaseException):
            raise _error(req, result) from None
        out.append(sorted(result, key=lambda r: r.name.normalized))
    return out
