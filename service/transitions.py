"""A version's life: its states, the moves between them, and cancel.

    queued -> solving -> installing -> packing -> ready -> deleting -> deleted
    (a pushed lock goes queued -> installing; without packs installing -> ready; any
    live state -> failed | cancelled, or back to queued when its runner stops; failed
    and cancelled versions are collected like ready ones)

``TRANSITIONS`` is the whole table. ``move`` writes a state as a conditional ``UPDATE``
that succeeds only from a state the table allows (and, for a build, only while its
runner still holds the claim), so a cancel, a watchdog or a hand-back that got there
first wins and the build learns it. ``become`` moves a row loaded under its lock,
``move_all`` many rows at once. A move
the table never allows is a bug (``IllegalTransition``), not a silent write; these are
the only writers of a version's state (a test reads the code to keep it so).

A cancel is recorded in the database (``cancel_requested_at``), not only in the memory
of the process that took the request: whichever process or pod builds the version sees
it at its next stage, and its runner's poll stops a download in between.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session


class State(enum.StrEnum):
    queued = "queued"
    solving = "solving"
    installing = "installing"
    packing = "packing"
    ready = "ready"
    failed = "failed"
    cancelled = "cancelled"
    deleting = "deleting"  # marked by GC; files being removed
    deleted = "deleted"  # files gone; spec, lock and log kept as a record

    @property
    def terminal(self) -> bool:
        """The build is over: nothing about it changes but collection."""
        return self not in LIVE


RUNNING = (State.solving, State.installing, State.packing)
LIVE = (State.queued, *RUNNING)
FINISHED = (State.ready, State.failed, State.cancelled)  # what GC may collect

#: Every legal move: state -> the states it may become.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.queued: frozenset({State.solving, State.installing, State.failed,
                             State.cancelled}),
    State.solving: frozenset({State.installing, State.failed, State.cancelled,
                              State.queued}),
    State.installing: frozenset({State.packing, State.ready, State.failed, State.cancelled,
                                 State.queued}),
    State.packing: frozenset({State.ready, State.failed, State.cancelled, State.queued}),
    State.ready: frozenset({State.deleting}),
    State.failed: frozenset({State.deleting}),
    State.cancelled: frozenset({State.deleting}),
    State.deleting: frozenset({State.deleted}),
    State.deleted: frozenset(),
}


class IllegalTransition(Exception):
    """A move the table never allows: a bug in the caller, never a user's mistake."""


def legal(before: State | str, after: State | str) -> bool:
    return State(after) in TRANSITIONS[State(before)]


def sources(after: State) -> list[str]:
    """The states ``after`` may be reached from; none is a bug."""
    found = [str(s) for s, nexts in TRANSITIONS.items() if after in nexts]
    if not found:
        raise IllegalTransition(f"no state may become {after}")
    return found


def move(s: Session, version_id: int, after: State, *, claim: str | None = None,
         unless_cancelled: bool = False, only_from: State | None = None,
         **fields: Any) -> bool:
    """Move the version to ``after`` (writing ``fields`` too) if its state allows it
    (``only_from``: if it is that state) and, with ``claim``, only while that runner holds
    it; with ``unless_cancelled``, not once a cancel is requested. False when the version
    is elsewhere by now (someone else's move came first)."""
    from envyard.service.models import Version

    if only_from is not None:
        check(only_from, after)
    where = [Version.id == version_id,
             Version.state.in_([only_from.value] if only_from else sources(after))]
    if claim is not None:
        where.append(Version.claimed_by == claim)
    if unless_cancelled:
        where.append(Version.cancel_requested_at.is_(None))
    done = s.execute(update(Version).where(*where).values(state=after.value, **fields))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def move_all(s: Session, after: State, *where: Any, **fields: Any) -> list[int]:
    """Move every version matching ``where`` whose state may become ``after`` (a watchdog,
    a runner settling or handing back many at once); the ids moved."""
    from envyard.service.models import Version

    return list(s.scalars(update(Version).where(*where, Version.state.in_(sources(after)))
                          .values(state=after.value, **fields).returning(Version.id)))


def check(before: State | str, after: State) -> None:
    """Raise unless ``before`` may become ``after``."""
    if not legal(before, after):
        raise IllegalTransition(f"a {before} version cannot become {after}")


def become(version: Any, after: State, **fields: Any) -> None:
    """Move a loaded row the caller holds locked (``with_for_update``) to ``after``, writing
    ``fields`` too; an illegal move raises before anything is written."""
    check(version.state, after)
    version.state = after
    for name, value in fields.items():
        setattr(version, name, value)


def request_cancel(s: Session, version: Any, now: dt.datetime) -> State:
    """Cancel ``version`` (a loaded row): a queued one is cancelled at once (a conditional
    write: a runner may be claiming it this moment); a running one is marked, and its
    build stops at its next stage or download chunk. Returns the state it is in now; the
    caller refuses a finished one."""
    from envyard.service.models import Version

    if State(version.state) is State.queued and move(
            s, version.id, State.cancelled, only_from=State.queued, error="cancelled",
            finished_at=now):
        return State.cancelled
    now_state = s.scalar(select(Version.state).where(Version.id == version.id))
    assert now_state is not None  # versions are never deleted, only marked
    state = State(now_state)
    if state in RUNNING:  # (it began meanwhile, or was running)
        s.execute(update(Version).where(Version.id == version.id,
                                        Version.cancel_requested_at.is_(None))
                  .values(cancel_requested_at=now))
    return state


class ImageState(enum.StrEnum):
    """A ready version's image: its own small life beside the version's (an image that
    fails leaves the version ready)."""

    building = "building"
    ready = "ready"
    failed = "failed"


#: Every legal move of an image (None: no image yet). building -> building is a runner
#: taking up the rebuild a request queued; ready or failed -> building is a rebuild.
IMAGE_TRANSITIONS: dict[ImageState | None, frozenset[ImageState]] = {
    None: frozenset({ImageState.building}),
    ImageState.building: frozenset({ImageState.building, ImageState.ready,
                                    ImageState.failed}),
    ImageState.ready: frozenset({ImageState.building}),
    ImageState.failed: frozenset({ImageState.building}),
}


def image_state(version: Any) -> ImageState | None:
    state = (version.image or {}).get("state")
    return ImageState(state) if state is not None else None


def set_image(version: Any, after: ImageState, **info: Any) -> None:
    """Move a loaded row's image to ``after`` with ``info`` (repository, reference, digest,
    error …); an illegal move raises before anything is written."""
    before = image_state(version)
    if after not in IMAGE_TRANSITIONS[before]:
        raise IllegalTransition(f"an image that is {before or 'not built'} cannot become "
                                f"{after}")
    version.image = {**info, "state": after.value}


def cancel_requested(s: Session, version_id: int) -> bool:
    from envyard.service.models import Version

    return s.scalar(select(Version.cancel_requested_at).where(
        Version.id == version_id)) is not None


def cancels_for(s: Session, runner: str) -> list[int]:
    """The running builds of ``runner`` whose cancel was requested (from any process)."""
    from envyard.service.models import Version

    return list(s.scalars(select(Version.id).where(
        Version.claimed_by == runner, Version.state.in_(list(RUNNING)),
        Version.cancel_requested_at.is_not(None))))


__all__ = [
    "FINISHED",
    "IMAGE_TRANSITIONS",
    "LIVE",
    "RUNNING",
    "TRANSITIONS",
    "IllegalTransition",
    "ImageState",
    "State",
    "become",
    "cancel_requested",
    "cancels_for",
    "check",
    "image_state",
    "legal",
    "move",
    "move_all",
    "request_cancel",
    "set_image",
    "sources",
]
