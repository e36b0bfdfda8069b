"""A submission (a spec, a pushed lock, a preview, or an earlier version again): checked,
numbered and queued, once.

The router hands over the request's bytes; this runs in a worker thread. A retry with an
``Idempotency-Key`` is answered with the first attempt's version before anything else is
checked (the first attempt may itself have filled the quota); then the volume's space,
the upload's check in a child process (``service.inputs``), the namespace's quota, and the
numbering under the environment row's lock.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from envyard.builder.layout import Layout
from envyard.service import audit
from envyard.service.admission import check_space
from envyard.service.auth import Principal
from envyard.service.buildlog import BuildLog
from envyard.service.catalog import earlier_submission, find_version, new_version
from envyard.service.db import Database
from envyard.service.errors import Conflict
from envyard.service.inputs import UploadChecker, rules_for, utf8
from envyard.service.models import Preview
from envyard.service.previews import find_preview
from envyard.service.quota import check_quota
from envyard.service.runners import Runner
from envyard.service.settings import Settings


def accept(db: Database, settings: Settings, runner: Runner, checker: UploadChecker,
           who: Principal, client: str, where: tuple[str, str], kind: str,
           body: bytes | bytearray, key: str | None, message: str | None = None,
           update: str = "minimal") -> JSONResponse:
    """Check the input, number a new version (after the quota check), queue its build,
    answer 202. Runs in a worker thread: parsing a large lock takes a while."""
    namespace, name = where
    text = utf8(body)
    texts: dict[str, str | None] = {"spec_text" if kind == "spec" else "lock_text": text}
    if key is not None:  # a retry: the first attempt's version, whatever has filled since
        with db.session() as s:
            earlier = earlier_submission(s, namespace, name, key, kind=kind, **texts)
            if earlier is not None:
                return _accepted(namespace, name, earlier.number, earlier.state)
    check_space(settings)
    source = f"{namespace}/{name}.yml" if kind == "spec" else "the pushed lock"
    with db.session() as s:
        rules = rules_for(s, settings, namespace)
    checker.check(kind, body, rules, source=source)
    return _queue(db, settings, runner, who, f"{'submitted' if kind == 'spec' else 'pushed'}"
                  f" by {who.name} from {client}", where, kind, texts, key=key,
                  message=message, update=update)


def accept_preview(db: Database, settings: Settings, runner: Runner, who: Principal,
                   client: str, where: tuple[str, str], preview_id: str, key: str | None,
                   message: str | None = None) -> JSONResponse:
    """Queue the build of a preview's lock as it was shown (no solve of its own)."""
    with db.session() as s:
        preview = find_preview(s, where, preview_id)
        s.expunge(preview)
    check_space(settings)
    return _queue(db, settings, runner, who, f"submitted by {who.name} from {client}, "
                  f"from preview {preview_id}", where, "spec",
                  {"spec_text": preview.spec_text, "lock_text": preview.lock_text},
                  key=key, message=message, preview=preview)


def accept_again(db: Database, settings: Settings, runner: Runner, who: Principal,
                 client: str, where: tuple[str, str], number: int, how: str,
                 update: str = "full", message: str | None = None) -> JSONResponse:
    """Version ``number`` again as a new version: ``rebuild`` solves its spec anew,
    ``reinstall`` installs its lock as it is (also bringing back what GC collected)."""
    with db.session() as s:
        v = find_version(s, *where, number)
        spec_text, lock_text = v.spec_text, v.lock_text
    if how == "rebuild" and spec_text is None:
        raise Conflict(f"version {number} was pushed as a lock: it has no spec to solve "
                       "again (reinstall it instead)")
    if how == "reinstall" and lock_text is None:
        raise Conflict(f"version {number} has no lock to install (it failed before its "
                       "solve finished): rebuild it instead")
    check_space(settings)
    texts = {"spec_text": spec_text} if how == "rebuild" else \
        {"lock_text": lock_text, "spec_text": spec_text}
    return _queue(db, settings, runner, who, f"{how} of version {number} by {who.name} "
                  f"from {client}", where, "spec" if how == "rebuild" else "lock", texts,
                  message=message or f"{how} of version {number}", update=update,
                  action=audit.Action(how), again={"of": number})


def _queue(db: Database, settings: Settings, runner: Runner, who: Principal, said: str,
           where: tuple[str, str], kind: str, texts: dict[str, str | None], *,
           key: str | None = None, message: str | None = None, update: str = "minimal",
           preview: Preview | None = None, action: audit.Action | None = None,
           again: dict[str, int] | None = None) -> JSONResponse:
    """The one way a version is added: the namespace's quota, then the numbering and its
    audit event in one transaction."""
    namespace, name = where
    with db.session() as s:
        check_quota(s, settings, namespace, name)
    with db.session(write=True) as s:
        version, created = new_version(s, namespace, name, kind=kind, idempotency_key=key,
                                       message=message, submitted_by=who.name[:100],
                                       revive=True, update=update, preview=preview, **texts)
        version_id, number, state = version.id, version.number, version.state
        if created:  # a retry's version was recorded by its first attempt
            detail = {"message": message} if message else {}
            if preview is not None:
                detail["preview"] = preview.id
            audit.record(s, who, action or (audit.Action.submit if kind == "spec"
                                            else audit.Action.push),
                         namespace, name, number, **detail, **(again or {}))
    if created:
        BuildLog(Layout(settings.root).build_dir(namespace, name, number) / "build.log"
                 ).line(said)
    runner.submit(version_id)
    return _accepted(namespace, name, number, state)


def _accepted(namespace: str, name: str, number: int, state: str) -> JSONResponse:
    url = f"/api/v1/environments/{namespace}/{name}/versions/{number}"
    return JSONResponse({"namespace": namespace, "name": name, "version": number,
                         "state": state, "url": url}, status_code=202,
                        headers={"Location": url})


__all__ = ["accept", "accept_again", "accept_preview"]
