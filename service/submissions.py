"""A submission (a spec or a pushed lock): checked, numbered and queued, once.

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
from envyard.service.catalog import earlier_submission, new_version
from envyard.service.db import Database
from envyard.service.inputs import InputRules, UploadChecker, utf8
from envyard.service.quota import check_quota
from envyard.service.runners import Runner
from envyard.service.settings import Settings


def accept(db: Database, settings: Settings, runner: Runner, checker: UploadChecker,
            who: Principal, client: str, where: tuple[str, str], kind: str,
            body: bytes | bytearray, key: str | None, message: str | None = None
            ) -> JSONResponse:
    """Check the input, number a new version (after the quota check), queue its build,
    answer 202. Runs in a worker thread: parsing a large lock takes a while."""
    namespace, name = where
    text = utf8(body)
    texts = {"spec_text" if kind == "spec" else "lock_text": text}
    if key is not None:  # a retry: the first attempt's version, whatever has filled since
        with db.session() as s:
            earlier = earlier_submission(s, namespace, name, key, kind=kind, **texts)
            if earlier is not None:
                return _accepted(namespace, name, earlier.number, earlier.state)
    check_space(settings)
    source = f"{namespace}/{name}.yml" if kind == "spec" else "the pushed lock"
    checker.check(kind, body, InputRules.of(settings), source=source)
    with db.session() as s:
        check_quota(s, settings, namespace, name)
    with db.session(write=True) as s:
        version, created = new_version(s, namespace, name, kind=kind, idempotency_key=key,
                                       message=message, submitted_by=who.name[:100],
                                       revive=True, **texts)
        version_id, number, state = version.id, version.number, version.state
        if created:  # a retry's version was recorded by its first attempt
            audit.record(s, who, audit.Action.submit if kind == "spec" else audit.Action.push,
                         namespace, name, number,
                         **({"message": message} if message else {}))
    if created:
        BuildLog(Layout(settings.root).build_dir(namespace, name, number) / "build.log").line(
            f"{'submitted' if kind == 'spec' else 'pushed'} by {who.name} from {client}")
    runner.submit(version_id)
    return _accepted(namespace, name, number, state)


def _accepted(namespace: str, name: str, number: int, state: str) -> JSONResponse:
    url = f"/api/v1/environments/{namespace}/{name}/versions/{number}"
    return JSONResponse({"namespace": namespace, "name": name, "version": number,
                         "state": state, "url": url}, status_code=202,
                        headers={"Location": url})


__all__ = ["accept"]
