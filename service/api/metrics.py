"""``/metrics`` in Prometheus text format, and ``/healthz``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from envyard.service.api.deps import RunnerDep, SessionDep, resolve_principal
from envyard.service.api.schemas import Health
from envyard.service.errors import NotFound
from envyard.service.models import PinMove, Role, Version
from envyard.service.transitions import State

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, session: SessionDep, runner: RunnerDep) -> str:
    """Builds by state, build durations, queue length and bytes stored. Who may read them
    is the ``metrics`` setting: anyone, a token with a role on '*', or nobody."""
    access = request.app.state.settings.metrics
    if access == "off":
        raise NotFound("metrics are not served here (setting metrics: off)")
    if access == "token":
        resolve_principal(request, request.headers.get("authorization")).require(
            "*", Role.viewer, anonymous=False)
    counts = dict(session.execute(select(Version.state, func.count()).group_by(Version.state))
                  .all())
    lines = ["# HELP envyard_versions Versions by state.", "# TYPE envyard_versions gauge"]
    lines += [f'envyard_versions{{state="{s.value}"}} {counts.get(s, 0)}' for s in State]
    durations = [sum(v.values()) for v in session.scalars(
        select(Version.timings).where(Version.state == State.ready)) if v]
    lines += ["# HELP envyard_build_seconds Build time of ready versions.",
              "# TYPE envyard_build_seconds summary",
              f"envyard_build_seconds_count {len(durations)}",
              f"envyard_build_seconds_sum {sum(durations):.3f}",
              "# HELP envyard_queue_length Builds queued or running in this process.",
              "# TYPE envyard_queue_length gauge", f"envyard_queue_length {runner.pending}",
              "# HELP envyard_bytes_stored Bytes of prefixes and packs, each counted once.",
              "# TYPE envyard_bytes_stored gauge"]
    stored = session.execute(
        select(Version.fingerprint, func.max(Version.prefix_bytes), func.max(Version.pack_bytes))
        .where(Version.state == State.ready).group_by(Version.fingerprint)).all()
    lines.append(f'envyard_bytes_stored{{part="prefixes"}} {sum(r[1] or 0 for r in stored)}')
    lines.append(f'envyard_bytes_stored{{part="packs"}} {sum(r[2] or 0 for r in stored)}')
    waiting = session.scalar(select(func.count()).select_from(PinMove)
                             .where(PinMove.settled_at.is_(None)))
    lines += ["# HELP envyard_pin_moves_waiting Applied Dask upgrades waiting for their "
              "builds.", "# TYPE envyard_pin_moves_waiting gauge",
              f"envyard_pin_moves_waiting {waiting}"]
    return "\n".join(lines) + "\n"


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    return {"status": "ok"}
