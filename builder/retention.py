"""Retention, as a pure function: versions + rules -> keep or delete, each with its reason.

Rules combine the way registry retention rules do: a version is kept if any rule keeps it.
Whatever the rules say, the current version, held versions and versions a build still
uses are kept. Ready versions are kept by ``keep_last`` (the newest N ready ones) or
``keep_days`` (younger than D days); failed and cancelled builds only have a log, kept for
``failed_log_days``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    keep_last: int | None = 5
    keep_days: float | None = 30.0
    failed_log_days: float | None = 7.0

    def merged(self, override: Rules | None) -> Rules:
        """``override``'s set fields win (namespace over global, environment over both)."""
        if override is None:
            return self
        return Rules(
            self.keep_last if override.keep_last is None else override.keep_last,
            self.keep_days if override.keep_days is None else override.keep_days,
            self.failed_log_days if override.failed_log_days is None
            else override.failed_log_days)


@dataclass(frozen=True)
class VersionFacts:
    number: int
    state: str
    created_at: dt.datetime
    held: bool = False
    current: bool = False
    in_use: bool = False  # a queued or running build, or one a build depends on


@dataclass(frozen=True)
class Decision:
    number: int
    delete: bool
    reason: str


_LIVE = {"queued", "solving", "installing", "packing"}


def plan(versions: Iterable[VersionFacts], rules: Rules, now: dt.datetime) -> list[Decision]:
    """Decide every version of one environment (deleted ones are not listed)."""
    versions = sorted(versions, key=lambda v: v.number, reverse=True)
    ready_rank = {v.number: i for i, v in enumerate(
        v for v in versions if v.state == "ready")}
    out = []
    for v in versions:
        if v.state in ("deleted",):
            continue
        age_days = (now - v.created_at).total_seconds() / 86400
        if v.current:
            out.append(Decision(v.number, False, "current"))
        elif v.held:
            out.append(Decision(v.number, False, "held"))
        elif v.in_use or v.state in _LIVE:
            out.append(Decision(v.number, False, "in use by a build"))
        elif v.state == "deleting":
            out.append(Decision(v.number, True, "deletion under way"))
        elif v.state == "ready":
            rank = ready_rank[v.number]
            if rules.keep_last is not None and rank < rules.keep_last:
                out.append(Decision(v.number, False, f"among the last {rules.keep_last} ready"))
            elif rules.keep_days is not None and age_days < rules.keep_days:
                out.append(Decision(v.number, False, f"younger than {rules.keep_days:g} days"))
            else:
                out.append(Decision(v.number, True, _why_not(rules, rank, age_days)))
        elif rules.failed_log_days is not None and age_days < rules.failed_log_days:
            days = rules.failed_log_days
            out.append(Decision(v.number, False, f"{v.state} build's log younger than "
                                f"{days:g} days"))
        else:
            out.append(Decision(v.number, True, f"{v.state} build's log older than "
                                f"{rules.failed_log_days or 0:g} days"))
    return out


def _why_not(rules: Rules, rank: int, age_days: float) -> str:
    parts = []
    if rules.keep_last is not None:
        parts.append(f"not among the last {rules.keep_last} ready (#{rank + 1})")
    if rules.keep_days is not None:
        parts.append(f"{age_days:.0f} days old (> {rules.keep_days:g})")
    return ", ".join(parts) or "no rule keeps it"
