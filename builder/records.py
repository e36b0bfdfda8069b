"""conda-meta records shared between immutable prefixes.

Every prefix holds a ``conda-meta/<package>.json`` record per package (~10 KB, ~9 MB for
an 800-package environment). A package's record is byte for byte the same in every prefix
it is linked into unless it names a file rewritten for that prefix. Versions of one
environment share most packages, so the service (whose prefixes are never changed after
they are built) hard-links identical records to one copy in a content-addressed store
beside the package cache; ten versions one package apart then hold the records about once.

Only for prefixes nobody changes: conda writes records in place, so a user's own prefix
(``envyard build``) keeps its own copies. A store copy is linked only when its bytes equal
the new record's (a changed copy is replaced, never spread), and ``prune`` removes copies
no prefix links any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

from envyard.builder.layout import temp_beside

logger = logging.getLogger("envyard")


def store_of(pkgs_dir: Path) -> Path:
    """The store beside a package cache (on its file system, under its lock)."""
    return pkgs_dir / "records"


def share(conda_meta: Path, store: Path) -> int:
    """Hard-link each record in ``conda_meta`` to its copy in ``store`` (the first
    prefix's record becomes the copy). Returns how many records now share a copy; a
    volume that refuses a link (no hard links, too many) keeps the prefix's own copy."""
    store.mkdir(parents=True, exist_ok=True)
    shared = 0
    for record in conda_meta.glob("*.json"):
        try:
            shared += _share_one(record, store)
        except OSError as exc:
            logger.warning("conda-meta record %s kept unshared: %s", record.name, exc)
    return shared


def _share_one(record: Path, store: Path) -> int:
    data = record.read_bytes()
    kept = store / f"{hashlib.sha256(data).hexdigest()}.json"
    try:
        same = kept.read_bytes() == data
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):  # another build stored it just now
            os.link(record, kept)
        return 0
    if not same:  # changed under its name: this record becomes the copy
        tmp = temp_beside(kept, "part")
        os.link(record, tmp)
        os.replace(tmp, kept)
        return 0
    tmp = temp_beside(record, "part")
    os.link(kept, tmp)
    os.replace(tmp, record)
    return 1


def prune(store: Path) -> int:
    """Remove the copies (and a killed build's temporary links) no prefix links any
    more; returns how many."""
    removed = 0
    for kept in store.iterdir() if store.is_dir() else ():
        if kept.lstat().st_nlink == 1:
            kept.unlink(missing_ok=True)
            removed += 1
    return removed


__all__ = ["prune", "share", "store_of"]
