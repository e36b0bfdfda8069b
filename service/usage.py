"""Bytes on disk per namespace and environment, as they really are: a file hardlinked into
several prefixes of one namespace counts once.

Prefixes never change once built, so each prefix's (inode, size) table is computed once and
kept beside it (``usage/<fingerprint>.json``); a report is then a union of cached tables,
not a scan of the volume.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.layout import Layout
from envyard.service.models import Environment, Namespace, Version
from envyard.service.transitions import State

HAS_FILES = (State.ready, State.installing, State.packing, State.deleting)


def inode_table(layout: Layout, fingerprint: str) -> dict[int, int]:
    """{inode: size} of a prefix's files (apparent sizes), cached after the first walk."""
    cache = layout.root / "usage" / f"{fingerprint}.json"
    prefix = layout.prefix(fingerprint)
    if cache.exists():
        return {int(k): v for k, v in json.loads(cache.read_text()).items()}
    table: dict[int, int] = {}
    for root, _, files in os.walk(prefix):
        for f in files:
            st = os.lstat(os.path.join(root, f))  # symlinks count their own few bytes
            table[st.st_ino] = st.st_size
    if prefix.is_dir():  # cache only what a complete prefix gave
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")  # builds of one prefix race here
        tmp.write_text(json.dumps(table))
        tmp.replace(cache)
    return table


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def usage_report(session: Session, layout: Layout,
                 namespaces: str | Collection[str] | None = None) -> dict[str, Any]:
    """Per namespace (all, or only ``namespaces``): total bytes (shared files once) and
    per environment."""
    query = (select(Namespace.name, Environment.name, Version.fingerprint)
             .join(Environment, Environment.namespace_id == Namespace.id)
             .join(Version, Version.environment_id == Environment.id)
             .where(Version.state.in_(list(HAS_FILES)),
                    Version.fingerprint.is_not(None)).distinct())
    if namespaces is not None:
        query = query.where(Namespace.name.in_(
            [namespaces] if isinstance(namespaces, str) else list(namespaces)))
    per_ns: dict[str, dict[str, set[str]]] = {}
    for ns, env, fp in session.execute(query):
        assert fp is not None  # the query leaves out versions without one
        per_ns.setdefault(ns, {}).setdefault(env, set()).add(fp)
    report: dict[str, Any] = {}
    for ns, envs in sorted(per_ns.items()):
        ns_inodes: dict[int, int] = {}
        ns_packs: set[str] = set()
        env_rows = {}
        for env, fps in sorted(envs.items()):
            inodes: dict[int, int] = {}
            for fp in fps:
                inodes.update(inode_table(layout, fp))
            packs = sum(_size(layout.pack(fp)) for fp in fps)
            env_rows[env] = {"bytes": sum(inodes.values()) + packs, "prefixes": len(fps)}
            ns_inodes.update(inodes)
            ns_packs |= fps
        total = sum(ns_inodes.values()) + sum(_size(layout.pack(fp)) for fp in ns_packs)
        report[ns] = {"bytes": total, "environments": env_rows}
    return report


def namespace_bytes(session: Session, layout: Layout, namespace: str) -> int:
    return usage_report(session, layout, namespace).get(namespace, {}).get("bytes", 0)
