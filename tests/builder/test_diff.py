"""The diff of two locks against an independent reading: packages of a real pangeo lock,
with versions made up so each change's class and direction are known by construction."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from envyard.builder.diff import change_kind, diff_locks
from envyard.builder.lock import LockedPackage, Lockfile, read_lock
from tests.corpus_channel import CORPUS

REAL = read_lock(CORPUS / "pangeo-pytorch-notebook" / "2026-01-31-2f5532bd" /
                 "conda-lock.yml")
PACKAGES = REAL.for_platform("linux-64")[:40]
SEGMENT = st.integers(0, 30)


def _with(lock: Lockfile, packages: list[LockedPackage]) -> Lockfile:
    return msgspec.structs.replace(lock, package=packages)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_diff_is_what_changed(data: st.DataObject) -> None:
    before, after, expected = [], [], {}
    for i, p in enumerate(PACKAGES):
        x, y, z = data.draw(st.tuples(SEGMENT, SEGMENT, SEGMENT))
        old = msgspec.structs.replace(p, version=f"{x}.{y}.{z}", build="b0")
        fate = data.draw(st.sampled_from(["same", "added", "removed", "major", "minor",
                                          "patch", "build"]))
        if fate != "added":
            before.append(old)
        if fate == "removed":
            expected[p.name] = ("removed", None)
            continue
        if fate in ("major", "minor", "patch"):
            at = ("major", "minor", "patch").index(fate)
            step = data.draw(st.sampled_from([1, -1])) if (x, y, z)[at] > 0 else 1
            parts = [x, y, z]
            parts[at] += step
            new = msgspec.structs.replace(old, version=".".join(map(str, parts)))
            expected[p.name] = (fate, "up" if step > 0 else "down")
        elif fate == "build":
            new = msgspec.structs.replace(old, build="b1")
            expected[p.name] = ("build", "same")
        else:
            new = old
            if fate == "added":
                expected[p.name] = ("added", None)
        after.append(new)
        if i % 2:  # a lock may list a package once per category: still one package
            after.append(msgspec.structs.replace(new, category="dev"))
    diff = diff_locks(_with(REAL, before), _with(REAL, after), "linux-64")
    found = {c.name: (c.kind, c.direction) for c in diff.added + diff.removed + diff.changed}
    assert found == expected
    assert [c.name for c in diff.changed] == sorted(c.name for c in diff.changed)
    assert all(len(line) <= 80 for line in diff.lines())


def test_change_classes() -> None:
    assert change_kind("1.26.4", "2.0.0") == "major"
    assert change_kind("2025.12.0", "2026.1.2") == "major"
    assert change_kind("3.11.7", "3.12.1") == "minor"
    assert change_kind("1.2.3", "1.2.4") == "patch"
    assert change_kind("1.2", "1.2.1") == "patch"
    assert change_kind("1!1.0", "2!1.0") == "major"
    assert change_kind("4.5", "4.5") == "build"


def test_versions_order_as_their_manager_orders_them() -> None:
    """1.10 is newer than 1.9 (not by string order); pip's 2.0rc1 is older than 2.0."""
    conda = msgspec.structs.replace(PACKAGES[0], version="1.9")
    newer = msgspec.structs.replace(conda, version="1.10")
    diff = diff_locks(_with(REAL, [conda]), _with(REAL, [newer]), "linux-64")
    assert [(c.kind, c.direction) for c in diff.changed] == [("minor", "up")]
    pip = msgspec.structs.replace(PACKAGES[1], manager="pip", name="a-wheel")
    rc = msgspec.structs.replace(pip, version="2.0rc1")
    final = msgspec.structs.replace(rc, version="2.0")
    diff = diff_locks(_with(REAL, [final]), _with(REAL, [rc]), "linux-64")
    assert [(c.name, c.direction) for c in diff.changed] == [(pip.name, "down")]
    same = msgspec.structs.replace(conda, version="1.9.0")  # equal by conda's ordering
    diff = diff_locks(_with(REAL, [conda]), _with(REAL, [same]), "linux-64")
    assert [(c.kind, c.direction) for c in diff.changed] == [("patch", "same")]


def test_two_real_locks_months_apart() -> None:
    """The corpus's pytorch-notebook locks of December and January: 880 and 885
    packages, each difference found exactly once."""
    base = CORPUS / "pangeo-pytorch-notebook"
    a = read_lock(base / "2025-12-18-be821057" / "conda-lock.yml")
    b = read_lock(base / "2026-01-31-2f5532bd" / "conda-lock.yml")
    diff = diff_locks(a, b, "linux-64")
    names_a = {(p.manager, p.name) for p in a.for_platform("linux-64")}
    names_b = {(p.manager, p.name) for p in b.for_platform("linux-64")}
    assert {(c.manager, c.name) for c in diff.added} == names_b - names_a
    assert {(c.manager, c.name) for c in diff.removed} == names_a - names_b
    versions_a = {(p.manager, p.name): (p.version, p.build_string)
                  for p in a.for_platform("linux-64")}
    versions_b = {(p.manager, p.name): (p.version, p.build_string)
                  for p in b.for_platform("linux-64")}
    assert {(c.manager, c.name) for c in diff.changed} == {
        k for k in names_a & names_b if versions_a[k] != versions_b[k]}
    assert diff_locks(a, a, "linux-64").empty
