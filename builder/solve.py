"""Solve conda match specs with rattler: per platform, with a time limit and readable conflicts.

A solve either returns records, raises ``SolveError`` with rattler's explanation of the
conflict, or raises ``SolveTimeout`` when the limit passes; it never hangs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.aio import run_with_timeout
from builder.errors import SolveError, SolveTimeout
from builder.virtual import VirtualPackages

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


@dataclass
class SolveRequest:
    """What to solve: specs on channels for one platform."""

    specs: Sequence[str]
    channels: Sequence[str]
    platform: str
    virtual: VirtualPackages
    locked: Sequence[Any] = ()
    constraints: Sequence[str] = ()
    timeout: float = DEFAULT_TIMEOUT
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "envyard" / "repodata")


def _clean(message: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", message).strip()


async def _solve(req: SolveRequest) -> list[Any]:
    import rattler

    gateway = rattler.Gateway(cache_dir=req.cache_dir)
    channels = [rattler.Channel(channel_url(c)) for c in req.channels]
    return await rattler.solve(
        sources=channels, specs=list(req.specs), gateway=gateway,
        platforms=[req.platform, "noarch"], locked_packages=list(req.locked) or None,
        virtual_packages=req.virtual.to_rattler(req.platform),
        timeout=datetime.timedelta(seconds=req.timeout),
        constraints=list(req.constraints) or None)


def solve(req: SolveRequest) -> list[Any]:
    """Solve one platform; return rattler ``RepoDataRecord``s sorted by name."""
    if not req.channels:
        raise SolveError("no channels to solve against: list some under 'channels:' "
                         "or pass --channel")
    try:
        records = run_with_timeout(
            lambda: _solve(req), timeout=req.timeout + 5,
            on_timeout=lambda: SolveTimeout(
                f"{req.platform}: the solve took longer than {req.timeout:.0f} s and was "
                "stopped; narrow the specs (pin versions) or raise the limit"))
    except SolveError:
        raise
    except Exception as exc:
        name = type(exc).__name__
        text = _clean(str(exc))
        if any(w in text.lower() for w in ("timeout", "timed out", "has been cancelled")):
            raise SolveTimeout(f"{req.platform}: the solve ran out of time "
                               f"({req.timeout:.0f} s): {text}") from None
        if name == "SolverError":
            raise SolveError(f"{req.platform}: the specs cannot be satisfied:\n{text}") from None
        raise SolveError(f"{req.platform}: could not solve ({name}): {text}") from None
    return sorted(records, key=lambda r: r.name.normalized)
