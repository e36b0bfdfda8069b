"""What killed processes leave on the volume: found, counted, and removed when unowned.

A build stages its prefix beside the final one, a prefix swap parks the old one, GC
renames a tree away before deleting it, and packing writes a ``.part``: each a temporary
sibling ``.<name>.envyard-<kind>-<id>`` (``builder.layout.temp_beside``) that a kill at the
wrong moment leaves behind (211 MB of GC trash and 146 MB of staging were seen). Such a
file is removed only when its owner's lock is free (the build lock of ``<name>`` for
staging, old prefixes and parts, GC's own lock for its trash, the package cache's
exclusive lock for half-fetched packages) *and* it is older than the longest a build may
take: a lock file tells only about processes of this node, where the volume may be
shared by replicas and build pods on others. Sweeping runs at start and in every GC, and
``usage`` counts what is left meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envyard.builder.fetch import CACHE_LOCK
from envyard.builder.layout import TEMP_KINDS, Layout, guard_of

logger = logging.getLogger("envyard")

_TEMP = re.compile(rf"^\.(?P<owner>.+)\.envyard-(?P<kind>{'|'.join(TEMP_KINDS)})-[0-9a-f]{{8}}$")
# written by earlier envyard versions
_LEGACY = re.compile(r"^\.(?P<owner>.+?)(\.gc-[0-9a-f]{8}|\.[0-9a-f]{8}\.part)$")


@dataclass(frozen=True)
class Leftover:
    path: Path
    kind: str  # staging, old, gc, part, fetch
    bytes: int

    def as_dict(self, layout: Layout) -> dict[str, object]:
        return {"path": str(self.path.relative_to(layout.root)), "kind": self.kind,
                "bytes": self.bytes}


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _candidates(layout: Layout) -> Iterator[tuple[Path, str, Path]]:
    """(leftover, kind, the lock that owns it) for every temporary file on the volume."""
    for folder in (layout.root / "prefixes", layout.root / "packs"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            m = _TEMP.match(entry.name)
            if m:
                kind = m["kind"]
            elif (m := _LEGACY.match(entry.name)) is not None:
                kind = "gc" if ".gc-" in entry.name else "part"
            else:
                continue
            owner = layout.gc_lock if kind == "gc" else guard_of(folder / m["owner"])
            yield entry, kind, owner
    if layout.pkgs.is_dir():  # a download's temporary file: `.<file name>.<random>`
        for entry in layout.pkgs.iterdir():
            if entry.name.startswith(".") and entry.name != CACHE_LOCK and entry.is_file():
                yield entry, "fetch", layout.pkgs / CACHE_LOCK


def find(layout: Layout) -> list[Leftover]:
    """Every temporary file on the volume now, owned or not, with its size."""
    return [Leftover(path, kind, _size(path)) for path, kind, _ in _candidates(layout)]


@contextlib.contextmanager
def _free(lock: Path, held: frozenset[Path]) -> Iterator[bool]:
    """Whether nobody holds ``lock`` (taken for the duration), or this caller does."""
    if lock in held:
        yield True
        return
    try:
        f = lock.open("a")
    except OSError:
        yield False
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


def _age(path: Path) -> float:
    """Seconds since ``path`` itself last changed (a staging tree's top directory keeps
    the time its first entries were made: a build's whole life, which is bounded)."""
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def sweep(layout: Layout, *, min_age: float, held: frozenset[Path] = frozenset()
          ) -> list[Leftover]:
    """Remove every leftover older than ``min_age`` seconds whose owner's lock is free
    (or in ``held``: the caller holds it, as GC holds its own). Returns what was removed."""
    removed = []
    for path, kind, lock in list(_candidates(layout)):
        if _age(path) < min_age:
            continue
        with _free(lock, held) as free:
            if not free or not (path.exists() or path.is_symlink()):
                continue
            size = _size(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(Leftover(path, kind, size))
    if removed:
        logger.info("removed %d leftover(s) of killed processes, %d bytes", len(removed),
                    sum(r.bytes for r in removed))
    return removed
