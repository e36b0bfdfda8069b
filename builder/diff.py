"""What changes between two locks: packages added, removed and changed, each change
classed by the first version segment that differs (major, minor, patch) or by the build
alone, and its direction. Conda and pip packages are kept apart (``numpy`` from each is
two packages)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

from envyard.builder.lock import LockedPackage, Lockfile

Kind = Literal["added", "removed", "major", "minor", "patch", "build", "other"]
Direction = Literal["up", "down", "same"]
_SEGMENT = re.compile(r"[._+\-]")


@dataclass(frozen=True)
class Change:
    """One package's change; ``before`` is None for an added one, ``after`` for a removed."""

    name: str
    manager: Literal["conda", "pip"]
    kind: Kind
    before: str | None
    after: str | None
    before_build: str | None = None
    after_build: str | None = None
    direction: Direction | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LockDiff:
    platform: str
    added: list[Change]
    removed: list[Change]
    changed: list[Change]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, object]:
        counts: dict[str, int] = {"added": len(self.added), "removed": len(self.removed)}
        for c in self.changed:
            counts[c.kind] = counts.get(c.kind, 0) + 1
        return {"platform": self.platform, "summary": counts,
                "added": [c.as_dict() for c in self.added],
                "removed": [c.as_dict() for c in self.removed],
                "changed": [c.as_dict() for c in self.changed]}

    def lines(self, width: int = 80) -> list[str]:
        """The diff for a terminal: one package a line, ``width`` columns at most."""
        out = []
        for c in self.added:
            out.append(f"+ {c.name} {c.after}" + (f" ({c.manager})" if c.manager == "pip" else ""))
        for c in self.removed:
            out.append(f"- {c.name} {c.before}"
                       + (f" ({c.manager})" if c.manager == "pip" else ""))
        for c in self.changed:
            arrow = {"up": "->", "down": "<-", "same": "=="}.get(c.direction or "", "->")
            before, after = (c.before, c.after) if c.kind != "build" else (
                f"{c.before} {c.before_build}", f"{c.after} {c.after_build}")
            out.append(f"~ {c.name} {before} {arrow} {after}  [{c.kind}]"
                       + (f" ({c.manager})" if c.manager == "pip" else ""))
        return [line if len(line) <= width else line[:width - 1] + "…" for line in out]


def _packages(lock: Lockfile, platform: str) -> dict[tuple[str, str], LockedPackage]:
    found: dict[tuple[str, str], LockedPackage] = {}
    for p in lock.selected(platform):  # what is installed: main and dev, as conda-lock
        found.setdefault((p.manager, p.name), p)
    return found


def change_kind(before: str, after: str) -> Kind:
    """major, minor or patch by the first version segment that differs (an epoch change
    is major); ``build`` when the versions are the same."""
    if before == after:
        return "build"
    epoch_a, _, rest_a = before.rpartition("!")
    epoch_b, _, rest_b = after.rpartition("!")
    if epoch_a != epoch_b:
        return "major"
    for i, (x, y) in enumerate(zip(_SEGMENT.split(rest_a), _SEGMENT.split(rest_b),
                                   strict=False)):
        if x != y:
            return ("major", "minor")[i] if i < 2 else "patch"
    return "patch"  # one extends the other: 1.2 -> 1.2.1


def _direction(before: LockedPackage, after: LockedPackage) -> Direction | None:
    """Whether the version went up or down by the manager's own ordering ("same" for
    1.0 -> 1.0.0); None when the manager cannot read one of them."""
    if before.version == after.version:
        return "same"
    try:
        if before.manager == "pip":
            from packaging.version import Version

            old, new = Version(before.version), Version(after.version)
            return "same" if old == new else "up" if new > old else "down"
        import rattler

        was, now = rattler.Version(before.version), rattler.Version(after.version)
        return "same" if was == now else "up" if now > was else "down"
    except Exception:  # unreadable: the order is unknown
        return None


def diff_locks(before: Lockfile, after: Lockfile, platform: str) -> LockDiff:
    """What moving from ``before`` to ``after`` changes on ``platform``, sorted by name."""
    a, b = _packages(before, platform), _packages(after, platform)
    added = [Change(p.name, p.manager, "added", None, p.version, after_build=p.conda_build)
             for key, p in sorted(b.items()) if key not in a]
    removed = [Change(p.name, p.manager, "removed", p.version, None,
                      before_build=p.conda_build)
               for key, p in sorted(a.items()) if key not in b]
    changed = []
    for key in sorted(a.keys() & b.keys()):
        old, new = a[key], b[key]
        if old.version == new.version and old.conda_build == new.conda_build:
            continue
        changed.append(Change(new.name, new.manager, change_kind(old.version, new.version),
                              old.version, new.version, old.conda_build, new.conda_build,
                              _direction(old, new)))
    return LockDiff(platform, sorted(added, key=_by_name), sorted(removed, key=_by_name),
                    sorted(changed, key=_by_name))


def _by_name(change: Change) -> tuple[str, str]:
    return change.name, change.manager


__all__ = ["Change", "LockDiff", "change_kind", "diff_locks"]
