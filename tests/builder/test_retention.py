"""Retention rules over generated histories: exactly what the rules say, with reasons."""

from __future__ import annotations

import datetime as dt
import random

from envyard.builder.retention import Rules, VersionFacts, plan

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def _v(n: int, state: str = "ready", days: float = 100, **kw: bool) -> VersionFacts:
    return VersionFacts(n, state, NOW - dt.timedelta(days=days), **kw)


def test_keep_last_and_keep_days_combine_with_or() -> None:
    history = [_v(1, days=90), _v(2, days=60), _v(3, days=10), _v(4, days=5), _v(5, days=1)]
    decisions = {d.number: d for d in plan(history, Rules(2, 20, 7), NOW)}
    assert {n for n, d in decisions.items() if d.delete} == {1, 2}
    assert decisions[5].reason == "among the last 2 ready"
    assert decisions[3].reason == "younger than 20 days"
    assert "not among the last 2 ready (#4)" in decisions[2].reason
    assert "60 days old" in decisions[2].reason


def test_current_held_and_in_use_are_always_kept() -> None:
    history = [_v(1, current=True), _v(2, held=True), _v(3, in_use=True), _v(4, "installing"),
               _v(5, "queued"), _v(6)]
    decisions = {d.number: d for d in plan(history, Rules(0, 0, 0), NOW)}
    assert [n for n, d in decisions.items() if d.delete] == [6]
    assert decisions[1].reason == "current" and decisions[2].reason == "held"
    assert decisions[3].reason == decisions[4].reason == "in use by a build"


def test_failed_builds_keep_only_their_log_for_a_while() -> None:
    history = [_v(1, "failed", days=3), _v(2, "cancelled", days=30), _v(3, days=0)]
    decisions = {d.number: d for d in plan(history, Rules(1, None, 7), NOW)}
    assert not decisions[1].delete and "younger than 7 days" in decisions[1].reason
    assert decisions[2].delete and "older than 7 days" in decisions[2].reason
    # failed builds never count toward "the last N ready"
    assert decisions[3].reason == "among the last 1 ready"


def test_overrides_merge_field_by_field() -> None:
    base = Rules(5, 30, 7)
    assert base.merged(Rules(2, None, None)) == Rules(2, 30, 7)
    assert base.merged(None) == base


def test_generated_history_matches_an_independent_reading_of_the_rules() -> None:
    rng = random.Random(4)
    for _ in range(200):
        rules = Rules(rng.choice([None, 0, 1, 3, 10]), rng.choice([None, 0, 7, 30]),
                      rng.choice([None, 1, 14]))
        history = [_v(n, rng.choice(["ready"] * 6 + ["failed", "cancelled", "installing"]),
                      rng.uniform(0, 120), held=rng.random() < 0.05,
                      current=False) for n in range(1, rng.randint(1, 40))]
        if history and rng.random() < 0.8:
            i = rng.randrange(len(history))
            history[i] = VersionFacts(history[i].number, "ready", history[i].created_at,
                                      current=True)
        got = {d.number: d.delete for d in plan(history, rules, NOW)}
        ready = sorted((v.number for v in history if v.state == "ready"), reverse=True)
        for v in history:
            age = (NOW - v.created_at).days + (NOW - v.created_at).seconds / 86400
            if v.current or v.held or v.state == "installing":
                want = False
            elif v.state == "ready":
                by_last = rules.keep_last is not None and ready.index(v.number) < rules.keep_last
                by_age = rules.keep_days is not None and age < rules.keep_days
                want = not (by_last or by_age)
            else:
                want = not (rules.failed_log_days is not None and age < rules.failed_log_days)
            assert got[v.number] == want, (rules, v)


def test_plan_over_ten_thousand_versions() -> None:
    history = [_v(n, days=(10_001 - n) / 100) for n in range(1, 10_001)]  # one per 15 min
    decisions = plan(history, Rules(5, 30, 7), NOW)
    kept = {d.number for d in decisions if not d.delete}
    assert kept == set(range(7002, 10_001))  # younger than 30 days (includes the last 5)
