"""Finding environments across the namespaces a caller may read: by name or description,
by the packages of their current version, by the state of their newest version, by the
Dask verdict of their current version; a page at a time.

Packages are read from ``version_packages`` (written in the publishing transaction,
``index_packages``), never from locks: a version is immutable once published, so the
index of a version never changes, and "the current version's packages" is a join on
``Environment.current_version`` that is right whatever moved it (a new build, a
rollback). Pages are keyset-paginated on (namespace, name): a cursor is the last row's
key, so rows added or deleted meanwhile neither repeat nor skip the others.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from packaging.utils import canonicalize_name
from sqlalchemy import ColumnElement, and_, case, exists, false, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from envyard.builder.spec import NAME_RE
from envyard.service.auth import Principal
from envyard.service.errors import Invalid
from envyard.service.models import Environment, Namespace, Version, VersionPackage
from envyard.service.transitions import LIVE, State

#: The longest package name indexed (and asked for); conda's and PyPI's are far shorter.
MAX_NAME = 200
PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

#: ``state=building``: the newest version is queued or being built.
BUILDING = "building"
StateFilter = Literal["queued", "solving", "installing", "packing", "ready", "failed",
                      "cancelled", "deleting", "deleted", "building"]
#: The Dask pin check of a current version: ``ok`` (every package distributed compares
#: matches the cluster's pins), ``mismatch`` (a required one differs, or dask and
#: distributed differ), ``none`` (no distributed: nothing talks to the cluster),
#: ``unchecked`` (built without cluster pins).
DaskVerdict = Literal["ok", "mismatch", "none", "unchecked"]


def package_key(name: str, manager: str) -> str | None:
    """A package's name as the index holds it: conda's lowercased (as rattler normalises
    it), pip's canonicalised (PEP 503, as the lock's pip section is); None for a name no
    search can ask for (past ``MAX_NAME``)."""
    if not name or len(name) > MAX_NAME:
        return None
    return canonicalize_name(name) if manager == "pip" else name.lower()


def asked_keys(name: str) -> list[str]:
    """The index keys a ``package=`` value matches: the conda and the pip reading of it
    (``Dask_Gateway`` finds conda's ``dask-gateway`` and pip's ``dask-gateway``)."""
    if len(name) > MAX_NAME or not PACKAGE_RE.fullmatch(name):
        raise Invalid(f"package {name[:MAX_NAME]!r}: a package name is letters, digits, "
                      f"'.', '_' and '-' (at most {MAX_NAME})")
    return sorted({name.lower(), canonicalize_name(name)})


def index_packages(session: Session, version_id: int,
                   packages: Iterable[dict[str, Any]]) -> None:
    """Record the package names of a version being published (its caller's transaction)."""
    keys = {k for p in packages
            if (k := package_key(str(p.get("name", "")), str(p.get("manager", "conda"))))}
    session.add_all(VersionPackage(version_id=version_id, name=k) for k in sorted(keys))


@dataclass(frozen=True)
class Filters:
    """What a find asks for; empty fields do not filter."""

    search: str | None = None
    packages: Sequence[str] = ()
    state: str | None = None
    dask: str | None = None


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next: str | None = None  # the cursor of the following page; None: this is the last


def encode_cursor(namespace: str, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([namespace, name]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The position a cursor holds; anything this service did not write is refused."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        value = None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, str) and NAME_RE.fullmatch(v) for v in value)):
        raise Invalid("cursor: not a cursor this service gave (pass the 'next' of a page)")
    return value[0], value[1]


def _verdict(report: Any) -> ColumnElement[Any]:
    """The verdict of a ``dask_report`` column, in SQL (SQLite and PostgreSQL read JSON
    the same way here): the report says applies and ok; a JSON null reads as unchecked."""
    applies, ok = report["applies"].as_boolean(), report["ok"].as_boolean()
    return case((applies.is_(None), "unchecked"), (applies == false(), "none"),
                (ok == true(), "ok"), else_="mismatch")


def dask_verdict(report: dict[str, Any] | None) -> DaskVerdict:
    """The verdict of one version's ``dask_report``: ``_verdict``'s reading, in Python."""
    if not report or report.get("applies") is None:
        return "unchecked"
    if not report["applies"]:
        return "none"
    return "ok" if report.get("ok") else "mismatch"


def find_environments(session: Session, who: Principal, filters: Filters, *,
                      cursor: str | None = None, limit: int = 50) -> Page:
    """One page of the environments ``who`` may read that match ``filters``, ordered by
    namespace and name; ``next`` is the cursor of the following page, if any."""
    readable = who.readable()
    if readable is not None and not readable:
        return Page([])
    current, latest = aliased(Version), aliased(Version)
    verdict = _verdict(current.dask_report)
    query = (
        select(Namespace.name, Environment.name, Environment.description,
               Environment.current_version, current.state,
               case((current.id.is_(None), None), else_=verdict), current.prefix_bytes,
               latest.number, latest.state, latest.created_at, latest.finished_at,
               latest.submitted_by, Environment.created_at)
        .select_from(Environment).join(Namespace, Namespace.id == Environment.namespace_id)
        .outerjoin(current, and_(current.environment_id == Environment.id,
                                 current.number == Environment.current_version))
        .outerjoin(latest, and_(latest.environment_id == Environment.id,
                                latest.number == Environment.version_counter))
        .where(Environment.deleted_at.is_(None)))
    if readable is not None:
        query = query.where(Namespace.name.in_(sorted(readable)))
    if filters.search:
        text = filters.search.lower()
        query = query.where(or_(
            func.lower(Namespace.name + "/" + Environment.name).contains(text,
                                                                          autoescape=True),
            func.lower(Environment.description).contains(text, autoescape=True)))
    for package in filters.packages:
        query = query.where(exists().where(VersionPackage.version_id == current.id,
                                           VersionPackage.name.in_(asked_keys(package))))
    if filters.state == BUILDING:
        query = query.where(latest.state.in_(list(LIVE)))
    elif filters.state:
        query = query.where(latest.state == State(filters.state))
    if filters.dask:
        query = query.where(current.id.is_not(None), verdict == filters.dask)
    if cursor:
        after_ns, after_name = decode_cursor(cursor)
        query = query.where(or_(Namespace.name > after_ns,
                                and_(Namespace.name == after_ns,
                                     Environment.name > after_name)))
    rows = session.execute(query.order_by(Namespace.name, Environment.name)
                           .limit(limit + 1)).all()
    out = [{"namespace": ns, "name": name, "description": description,
            "current_version": current_number, "current_state": current_state,
            "dask": dask, "current_bytes": current_bytes, "latest_version": latest_number,
            "latest_state": latest_state, "updated_at": _utc(finished or created or
                                                             env_created),
            "updated_by": updated_by}
           for (ns, name, description, current_number, current_state, dask, current_bytes,
                latest_number, latest_state, created, finished, updated_by, env_created)
           in rows[:limit]]
    more = len(rows) > limit
    return Page(out, encode_cursor(out[-1]["namespace"], out[-1]["name"]) if more else None)


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives times back without their zone; they were written in UTC."""
    return t.replace(tzinfo=dt.UTC) if t is not None and t.tzinfo is None else t


__all__ = ["BUILDING", "DaskVerdict", "Filters", "Page", "StateFilter", "asked_keys",
           "dask_verdict", "decode_cursor", "encode_cursor", "find_environments", "index_packages",
           "package_key"]
