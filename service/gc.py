"""Garbage collection: plan by the retention rules, then mark, then sweep.

Crash-safe by construction: a version is first marked ``deleting`` in the database (so it
no longer says ready), then its files go, then it is marked ``deleted``. A GC killed
anywhere is resumed by the next one, which sweeps every ``deleting`` version again
(each step is idempotent). A prefix or pack is removed only under its build lock and only
when no version that is live, ready or held still uses its fingerprint, so a build racing
GC either sees the prefix or rebuilds it. Package-cache entries no live lock uses are
pruned under the cache's exclusive lock, which builds hold shared while they fetch and
link.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from envyard.builder import records
from envyard.builder.errors import EnvyardError
from envyard.builder.fetch import package_cache_lock
from envyard.builder.layout import Layout, guard_of, temp_beside
from envyard.builder.lock import parse_lock
from envyard.builder.pkgcache import recheck, stamp_owner
from envyard.builder.retention import Decision, Rules, VersionFacts, plan
from envyard.service import audit, leftovers, policy
from envyard.service.auth import Principal
from envyard.service.db import Database
from envyard.service.images import delete_images, prune_store
from envyard.service.models import Environment, Namespace, Version, utcnow
from envyard.service.platform_packs import platform_pack_key
from envyard.service.runners import build_limit
from envyard.service.settings import Settings
from envyard.service.storage import ArtifactStore, build_key, open_store, pack_key
from envyard.service.transitions import FINISHED, State, become
from envyard.service.usage import inode_table

_ENV = (Environment, Version.environment_id == Environment.id)
_NS = (Namespace, Environment.namespace_id == Namespace.id)
logger = logging.getLogger("envyard")
KEEP_FILES = {State.queued, State.solving, State.installing, State.packing, State.ready}


@dataclass(frozen=True)
class PlanRow:
    namespace: str
    name: str
    number: int
    state: str
    delete: bool
    reason: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


#: A deleted environment's versions: none is kept by a rule (holds were released).
COLLECT_ALL = Rules(keep_last=0, keep_days=0, failed_log_days=0)


def make_plan(session: Session, settings: Settings, now: dt.datetime | None = None,
              namespaces: Collection[str] | None = None,
              deleting: tuple[str, str] | None = None) -> list[PlanRow]:
    """One row per version that still has files, with the rule that keeps or deletes it;
    only of ``namespaces`` when given (the others are then neither read nor planned, and
    every prefix they use counts as kept, so the bytes freed are never overstated);
    ``deleting``: as if that environment were deleted (what its deletion would free)."""
    now = now or utcnow()
    overrides = policy.load_rules(session, namespaces)
    query = (select(Version.environment_id, Version.number, Version.state, Version.created_at,
                    Version.held, Version.fingerprint, Version.prefix_bytes,
                    Version.pack_bytes, Environment.current_version, Environment.name,
                    Namespace.name, Environment.collect_through)
             .join(Environment, Version.environment_id == Environment.id)
             .join(Namespace, Environment.namespace_id == Namespace.id)
             .where(Version.state != State.deleted))
    elsewhere: set[str] = set()
    if namespaces is not None:
        query = query.where(Namespace.name.in_(list(namespaces)))
        elsewhere = set(session.scalars(
            select(Version.fingerprint).join(Environment).join(Namespace)
            .where(Namespace.name.not_in(list(namespaces)),
                   Version.state != State.deleted, Version.fingerprint.is_not(None))
            .distinct()))
    by_env: dict[int, list[Any]] = {}
    for row in session.execute(query):
        by_env.setdefault(row[0], []).append(row)
    decided: list[tuple[Any, Decision]] = []
    for versions in by_env.values():
        ns, name = versions[0][10], versions[0][9]
        through = versions[0][11] or 0  # deleted with the environment: collected
        if (ns, name) == deleting:
            through = max(v[1] for v in versions)
        gone = [v for v in versions if v[1] <= through]
        kept = [v for v in versions if v[1] > through]
        decisions = {d.number: d for d in plan(
            [VersionFacts(v[1], v[2], _aware(v[3]), held=v[4], current=v[8] == v[1])
             for v in kept], policy.retention_rules(settings, overrides, ns, name), now)}
        decisions |= {d.number: Decision(d.number, d.delete, "the environment was deleted"
                                         if d.delete else d.reason) for d in plan(
            [VersionFacts(v[1], v[2], _aware(v[3])) for v in gone], COLLECT_ALL, now)}
        decided += [(v, decisions[v[1]]) for v in versions]
    rows = []
    freed = _freed_bytes(Layout(settings.root), decided, elsewhere)
    for v, d in decided:
        rows.append(PlanRow(v[10], v[9], v[1], v[2], d.delete, d.reason,
                            freed.get((v[0], v[1]), 0)))
    rows.sort(key=lambda r: (r.namespace, r.name, r.number))
    return rows


def _freed_bytes(layout: Layout, decided: list[tuple[Any, Decision]],
                 kept_elsewhere: set[str]) -> dict[tuple[int, int], int]:
    """Bytes each deletion really frees: a prefix only when no kept version shares it, and
    of its files only those no kept prefix hardlinks too; each file counted once."""
    kept_fps = {v[5] for v, d in decided if not d.delete and v[5]} | kept_elsewhere
    kept_inodes: set[int] = set()
    for fp in kept_fps:
        kept_inodes |= inode_table(layout, fp).keys()
    seen: set[int] = set()
    done_fps: set[str] = set()
    freed: dict[tuple[int, int], int] = {}
    for v, d in decided:
        fp = v[5]
        if not d.delete or not fp or fp in kept_fps or fp in done_fps:
            continue
        done_fps.add(fp)
        table = inode_table(layout, fp)
        mine = {i for i in table if i not in kept_inodes and i not in seen}
        seen |= mine
        pack = layout.pack(fp)
        freed[(v[0], v[1])] = sum(table[i] for i in mine) + (
            pack.stat().st_size if pack.exists() else v[7] or 0)  # v[7]: in object storage
    return freed


def _remove_tree(path: Path) -> None:
    """Rename away, then delete: the path disappears at once even if deletion is cut short."""
    if path.exists() or path.is_symlink():
        trash = temp_beside(path, "gc")
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def _fingerprint_in_use(session: Session, fingerprint: str) -> bool:
    return session.scalar(select(Version.id).where(
        Version.fingerprint == fingerprint,
        Version.state.in_(list(KEEP_FILES))).limit(1)) is not None


def _sweep_shared(db: Database, layout: Layout, fingerprint: str,
                  store: ArtifactStore | None) -> None:
    """Delete a prefix and pack nobody uses any more, under their build locks."""
    prefix = layout.prefix(fingerprint)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with guard_of(prefix).open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        with db.session() as s:
            if _fingerprint_in_use(s, fingerprint):
                return
        _remove_tree(prefix)
        pack = layout.pack(fingerprint)
        pack.unlink(missing_ok=True)
        if store is not None:
            store.delete(pack_key(fingerprint))


def _sweep_platform_packs(db: Database, settings: Settings, version_id: int) -> None:
    """The packs for other platforms made from the version's lock, once no kept version
    has that lock (they are keyed by its text)."""
    with db.session() as s:
        lock_text = s.scalar(select(Version.lock_text).where(Version.id == version_id))
        if not lock_text or s.scalar(select(Version.id).where(Version.lock_text == lock_text,
                                             Version.state.in_(list(KEEP_FILES))
                                             ).limit(1)) is not None:
            return
    try:
        platforms = parse_lock(lock_text).metadata.platforms
    except EnvyardError:
        return
    store = open_store(settings)
    for platform in platforms:
        store.delete(platform_pack_key(lock_text, platform))


def apply_plan(db: Database, settings: Settings, *, who: Principal | None = None,
               now: dt.datetime | None = None) -> dict[str, Any]:
    """Mark what the plan deletes, sweep every marked version, prune the package cache.
    One GC at a time across every service process: a PostgreSQL advisory lock (replicas
    on several nodes), and a file lock on the volume (processes sharing SQLite). Audited
    when ``who`` asked for it, or (the service's schedule) when it marked a version."""
    layout = Layout(settings.root)
    settings.root.mkdir(parents=True, exist_ok=True)
    with _advisory_lock(db), layout.gc_lock.open("a") as gc_lock:
        fcntl.flock(gc_lock, fcntl.LOCK_EX)
        return _apply(db, settings, layout, who, now)


#: The key of GC's advisory lock: any constant no other user of the database takes.
GC_LOCK_KEY = 0x656E7679617264  # "envyard"


@contextlib.contextmanager
def _advisory_lock(db: Database) -> Iterator[None]:
    """Hold ``pg_advisory_lock`` on a connection of its own for the whole collection (it
    is released if this process dies, unlike a row flag)."""
    if db.engine.dialect.name != "postgresql":
        yield
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": GC_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_LOCK_KEY})
            conn.commit()


def _apply(db: Database, settings: Settings, layout: Layout, who: Principal | None,
           now: dt.datetime | None) -> dict[str, Any]:
    with db.session(write=True) as s:
        rows = make_plan(s, settings, now)
        doomed = {(r.namespace, r.name, r.number) for r in rows if r.delete}
        marked: list[str] = []
        for v, env, ns in s.execute(select(Version, Environment.name, Namespace.name)
                                    .select_from(Version).join(*_ENV).join(*_NS)
                                    .where(Version.state.in_(
                                        list(FINISHED)))):
            if (ns, env, v.number) in doomed and not v.held:
                become(v, State.deleting, state_before_gc=v.state)
                marked.append(ns)
        if marked or who is not None:
            audit.record(s, who or audit.SERVICE, audit.Action.gc, marked=len(marked),
                         namespaces=sorted(set(marked))[:100])
    swept = sweep(db, layout, settings)
    pruned = prune_package_cache(db, layout)
    blobs = prune_store(db, layout)
    left = leftovers.sweep(layout, min_age=build_limit(settings),
                           held=frozenset({layout.gc_lock}))
    return {"deleted": swept, "pruned_cache_entries": pruned, "pruned_image_blobs": blobs,
            "removed_leftovers": [r.as_dict(layout) for r in left],
            "planned": [r.as_dict() for r in rows if r.delete]}


def sweep(db: Database, layout: Layout, settings: Settings | None = None) -> list[str]:
    """Finish every version marked ``deleting`` (including a killed GC's)."""
    with db.session() as s:
        marked = s.execute(select(Version.id, Version.number, Version.fingerprint,
                                  Version.state_before_gc, Environment.name, Namespace.name)
                           .select_from(Version).join(*_ENV).join(*_NS)
                           .where(Version.state == State.deleting)).all()
        doomed_images = [i for (i,) in s.execute(select(Version.image).where(
            Version.state == State.deleting, Version.image.is_not(None)))]
        live_images = {(i["repository"], i.get("digest", "")) for (i,) in s.execute(
            select(Version.image).where(Version.state.not_in(
                [State.deleting, State.deleted]), Version.image.is_not(None)))}
    if settings is not None and doomed_images:
        for problem in delete_images(settings, doomed_images, live_images):
            logger.warning("gc could not delete image %s", problem)
    store = open_store(settings) if settings is not None and settings.storage.backend != "local" \
        else None
    done = []
    for version_id, number, fp, before, name, ns in marked:
        link = layout.version_link(ns, name, number)
        if link.is_symlink():
            link.unlink()
        if before in (State.failed, State.cancelled):
            log = layout.build_dir(ns, name, number) / "build.log"
            log.unlink(missing_ok=True)
            if store is not None:
                store.delete(build_key(ns, name, number, "build.log"))
        with db.session(write=True) as s:
            v = s.get(Version, version_id)
            if v is not None and v.state == State.deleting:
                become(v, State.deleted, finished_at=v.finished_at or utcnow())
        if fp:
            _sweep_shared(db, layout, fp, store)
        if settings is not None:
            _sweep_platform_packs(db, settings, version_id)
        done.append(f"{ns}/{name}/{number}")
    return done


def prune_package_cache(db: Database, layout: Layout) -> int:
    """Remove cached archives and extracted packages that no live lock names."""
    if not layout.pkgs.is_dir():
        return 0
    with package_cache_lock(layout.pkgs, shared=False):
        with db.session() as s:
            locks = s.scalars(select(Version.lock_text).where(
                Version.state.in_(list(KEEP_FILES)),
                Version.lock_text.is_not(None)))
            wanted: set[str] = set()
            for text in locks:
                assert text is not None  # the query leaves out versions without one
                for p in parse_lock(text).package:
                    wanted.add(p.filename)
        stems = {_stem(f) for f in wanted}
        removed = 0
        for entry in layout.pkgs.iterdir():
            if entry.name.startswith("."):
                continue
            base = entry.name.removesuffix(".verified")
            if entry.is_file() and base not in wanted:
                entry.unlink(missing_ok=True)
                removed += 1
        extracted = layout.pkgs / "extracted"
        if extracted.is_dir():
            for entry in extracted.iterdir():
                if (stamp_owner(entry.name) or entry.name.removesuffix(".lock")) in stems:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
                else:
                    entry.unlink(missing_ok=True)
            # the prefixes deleted above changed their files' ctimes: verify here, once,
            # rather than in the next build
            removed += len(recheck(extracted))
        return removed + records.prune(records.store_of(layout.pkgs))


def _stem(filename: str) -> str:
    for ext in (".conda", ".tar.bz2", ".whl"):
        filename = filename.removesuffix(ext)
    return filename


