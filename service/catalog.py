"""Namespaces, environments and versions in the database: create, number, find, list.

Numbering takes the environment row's write lock (``SELECT … FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so concurrent submissions get consecutive numbers.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from envyard.builder.lock import Lockfile, parse_lock
from envyard.builder.spec import NAME_RE
from envyard.service.errors import BadName, Conflict, NotFound
from envyard.service.find import dask_verdict
from envyard.service.models import Environment, Namespace, Version
from envyard.service.transitions import State


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise BadName(f"{kind} name '{name}' must match {NAME_RE.pattern}")
    return name


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _insert_quietly(session: Session, row: Namespace | Environment) -> None:
    """Insert unless a concurrent transaction already did (the unique constraint decides)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        pass


def get_or_create_environment(session: Session, namespace: str, name: str, *,
                              revive: bool = False) -> Environment:
    """The environment row, created if needed, locked for this transaction; a deleted one
    only with ``revive`` (a user's submission under the name), else ``NotFound``."""
    ns_query = select(Namespace).where(Namespace.name == namespace)
    ns = session.scalar(ns_query)
    if ns is None:
        _insert_quietly(session, Namespace(name=namespace))
        ns = session.scalars(ns_query).one()
    env_query = select(Environment).where(Environment.namespace_id == ns.id,
                                          Environment.name == name).with_for_update()
    env = session.scalar(env_query)
    if env is None:
        _insert_quietly(session, Environment(namespace_id=ns.id, name=name))
        env = session.scalars(env_query).one()
    if env.deleted_at is not None:
        if not revive:
            raise NotFound(f"{namespace}/{name} was deleted")
        env.deleted_at = None  # its old versions stay collectable (collect_through)
    return env


def new_version(session: Session, namespace: str, name: str, *, kind: str,
                spec_text: str | None = None, lock_text: str | None = None,
                idempotency_key: str | None = None, message: str | None = None,
                submitted_by: str | None = None, revive: bool = False,
                update: str = "minimal", preview: Any = None) -> tuple[Version, bool]:
    """Add version N+1 of ``namespace/name`` in state queued; returns it and True. With an
    ``idempotency_key`` that an earlier request of this environment used, returns that
    request's version and False instead (under the environment row's lock, so two racing
    retries make one version); the same key with another body is a conflict.

    A spec is solved on the current version's lock (``update="minimal"``, read here under
    the same lock as the numbering) unless ``update="full"`` or there is none; one from a
    ``preview`` (a ``Preview`` row) builds the preview's lock, solved as it was."""
    env = get_or_create_environment(session, namespace, name, revive=revive)
    key = sha256_text(idempotency_key) if idempotency_key else None
    if key is not None:
        earlier = _earlier(session, env.id, key, kind, spec_text, lock_text)
        if earlier is not None:
            return earlier, False
    env.version_counter += 1
    if preview is not None:
        solve, base = preview.solve, preview.base_version
    elif kind == "spec":
        minimal = update == "minimal" and env.current_version is not None
        solve, base = ("minimal", env.current_version) if minimal else ("full", None)
    else:
        solve, base = None, None
    version = Version(environment_id=env.id, number=env.version_counter, kind=kind,
                      state=State.queued, spec_text=spec_text, lock_text=lock_text,
                      spec_sha256=sha256_text(spec_text) if spec_text is not None else None,
                      idempotency_key=key, timings={}, message=message,
                      submitted_by=submitted_by, solve=solve, base_version=base,
                      preview=preview.id if preview is not None else None)
    session.add(version)
    session.flush()
    return version, True


def earlier_submission(session: Session, namespace: str, name: str, idempotency_key: str,
                       *, kind: str, spec_text: str | None = None,
                       lock_text: str | None = None) -> Version | None:
    """The version an earlier request with this key made, if any (looked up before a
    retry is checked against a quota the first attempt may itself have filled)."""
    env_id = session.scalar(select(Environment.id).join(Namespace).where(
        Namespace.name == namespace, Environment.name == name))
    if env_id is None:
        return None
    return _earlier(session, env_id, sha256_text(idempotency_key), kind, spec_text,
                    lock_text)


def _earlier(session: Session, env_id: int, key: str, kind: str, spec_text: str | None,
             lock_text: str | None) -> Version | None:
    earlier = session.scalar(select(Version).where(Version.environment_id == env_id,
                                                   Version.idempotency_key == key))
    given_lock = kind == "lock" or (earlier is not None and earlier.preview is not None)
    if earlier is not None and (earlier.kind, earlier.spec_text,
                                earlier.lock_text if given_lock else None
                                ) != (kind, spec_text, lock_text):
        raise Conflict("this Idempotency-Key was used for a different request; send a new "
                       "key for a new submission")
    return earlier


#: Parsed locks of recent versions: a lock never changes once recorded, and a pangeo-sized
#: one takes ~50 ms to read, which previews and diffs of the same environment pay again.
_LOCKS: OrderedDict[tuple[int, str], Lockfile] = OrderedDict()
_LOCKS_LOCK = threading.Lock()
LOCKS_KEPT = 16


def version_lock(version: Version) -> Lockfile:
    """``version``'s lock, parsed (shared: read it, do not change it). Keyed by the row
    and the text's digest, so a row whose lock was recorded later is read afresh."""
    if version.lock_text is None:
        raise NotFound(f"version {version.number} has no lock yet (state {version.state})")
    key = (version.id, sha256_text(version.lock_text))
    with _LOCKS_LOCK:
        if key in _LOCKS:
            _LOCKS.move_to_end(key)
            return _LOCKS[key]
    lock = parse_lock(version.lock_text, source=f"version {version.number}'s lock")
    with _LOCKS_LOCK:
        _LOCKS[key] = lock
        while len(_LOCKS) > LOCKS_KEPT:
            _LOCKS.popitem(last=False)
    return lock


def find_namespace(session: Session, namespace: str) -> Namespace:
    ns = session.scalar(select(Namespace).where(Namespace.name == namespace))
    if ns is None:
        raise NotFound(f"no namespace {namespace}")
    return ns


def find_environment(session: Session, namespace: str, name: str) -> Environment:
    env = session.scalar(select(Environment).join(Namespace).where(
        Namespace.name == namespace, Environment.name == name,
        Environment.deleted_at.is_(None)))
    if env is None:
        raise NotFound(f"no environment {namespace}/{name}")
    return env


def find_version(session: Session, namespace: str, name: str, number: int) -> Version:
    version = session.scalar(select(Version).join(Environment).join(Namespace).where(
        Namespace.name == namespace, Environment.name == name, Version.number == number,
        Environment.deleted_at.is_(None)))
    if version is None:
        raise NotFound(f"no version {number} of {namespace}/{name}")
    return version


def version_summary(v: Version, namespace: str, name: str) -> dict[str, Any]:
    """What a history row shows: state, who and why, when and how long, size, verdict."""
    return {"namespace": namespace, "name": name, "number": v.number, "kind": v.kind,
            "state": v.state, "created_at": v.created_at, "started_at": v.started_at,
            "finished_at": v.finished_at, "spec_sha256": v.spec_sha256, "error": v.error,
            "message": v.message, "submitted_by": v.submitted_by, "held": v.held,
            "prefix_bytes": v.prefix_bytes, "dask_verdict": dask_verdict(v.dask_report)}


def version_detail(v: Version, namespace: str, name: str) -> dict[str, Any]:
    return {**version_summary(v, namespace, name),
            "timings": v.timings, "fingerprint": v.fingerprint, "pack_bytes": v.pack_bytes,
            "packages": v.packages or [], "dask": v.dask_report, "image": v.image,
            "solve": v.solve, "base_version": v.base_version, "preview": v.preview,
            "stopped_in": v.stopped_in,
            "artifacts": {a.kind: {"path": a.path, "bytes": a.bytes} for a in v.artifacts}}


def environment_rows(session: Session, namespace: str) -> list[dict[str, Any]]:
    """Each environment with its latest version; the counter names it, so the join is one
    index lookup per environment."""
    rows = session.execute(
        select(Environment.name, Environment.current_version, Version.number, Version.state,
               Version.spec_sha256).join(Namespace)
        .outerjoin(Version, (Version.environment_id == Environment.id)
                   & (Version.number == Environment.version_counter))
        .where(Namespace.name == namespace, Environment.deleted_at.is_(None))
        .order_by(Environment.name)).all()
    return [{"namespace": namespace, "name": name, "current_version": current,
             "latest_version": number, "latest_state": state, "latest_spec_sha256": digest}
            for name, current, number, state, digest in rows]
