"""A version's life, edge by edge: every move the table allows happens, every other one
is refused, on a real database through the same conditional write the builders use."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from envyard.service.db import Database, migrate
from envyard.service.models import Environment, Namespace, Version, utcnow
from envyard.service.transitions import (
    FINISHED,
    IMAGE_TRANSITIONS,
    LIVE,
    RUNNING,
    TRANSITIONS,
    IllegalTransition,
    ImageState,
    State,
    cancels_for,
    check,
    image_state,
    legal,
    move,
    request_cancel,
    set_image,
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('db') / 'envyard.db'}")
    migrate(database.engine)
    with database.session(write=True) as s:
        ns = Namespace(name="life")
        s.add(ns)
        s.flush()
        s.add(Environment(namespace_id=ns.id, name="edges"))
    yield database
    database.engine.dispose()


def _version(db: Database, state: State, claimed_by: str | None = None) -> int:
    with db.session(write=True) as s:
        env = s.query(Environment).one()
        env.version_counter += 1
        v = Version(environment_id=env.id, number=env.version_counter, kind="spec",
                    state=state.value, claimed_by=claimed_by)
        s.add(v)
        s.flush()
        return v.id


def _state(db: Database, version_id: int) -> str:
    with db.session() as s:
        v = s.get(Version, version_id)
        assert v is not None
        return v.state


@pytest.mark.parametrize(("before", "after"), list(itertools.product(State, State)))
def test_every_edge(db: Database, before: State, after: State) -> None:
    version_id = _version(db, before)
    with db.session(write=True) as s:
        moved = move(s, version_id, after)
    assert moved is (after in TRANSITIONS[before])
    assert _state(db, version_id) == (after if moved else before)
    if moved:
        check(before, after)
    else:
        with pytest.raises(IllegalTransition):
            check(before, after)


def test_the_table_is_the_life_users_see() -> None:
    assert set(TRANSITIONS) == set(State)
    assert all(not legal(s, State.queued) for s in FINISHED)  # a finished build stays so
    assert all(legal(s, State.cancelled) and legal(s, State.failed) for s in LIVE)
    assert [s for s in State if s.terminal] == [*FINISHED, State.deleting, State.deleted]
    assert not TRANSITIONS[State.deleted]


def test_a_build_moves_only_while_its_runner_holds_the_claim(db: Database) -> None:
    version_id = _version(db, State.solving, claimed_by="runner-a")
    with db.session(write=True) as s:
        assert not move(s, version_id, State.installing, claim="runner-b")
    with db.session(write=True) as s:
        assert move(s, version_id, State.installing, claim="runner-a")
    assert _state(db, version_id) == "installing"


def test_a_cancel_is_recorded_and_stops_the_next_stage(db: Database) -> None:
    queued, running = _version(db, State.queued), _version(db, State.installing, "runner-a")
    with db.session(write=True) as s:
        assert request_cancel(s, s.get(Version, queued), utcnow()) is State.cancelled
        assert request_cancel(s, s.get(Version, running), utcnow()) is State.installing
    assert _state(db, queued) == "cancelled"
    with db.session() as s:
        assert cancels_for(s, "runner-a") == [running] and cancels_for(s, "runner-b") == []
    with db.session(write=True) as s:  # the next stage does not begin …
        assert not move(s, running, State.packing, claim="runner-a", unless_cancelled=True)
    with db.session(write=True) as s:  # … the build ends cancelled
        assert move(s, running, State.cancelled, claim="runner-a")
    assert _state(db, running) == "cancelled"
    assert set(RUNNING) < set(LIVE)


def test_a_cancel_racing_a_claim_marks_the_build_instead(db: Database) -> None:
    """The row was read queued; a runner began it meanwhile. Before, the cancel wrote
    'cancelled' over 'solving' unconditionally and the build ran on, unsignalled."""
    version_id = _version(db, State.queued)
    with db.session(write=True) as s:
        seen = s.get(Version, version_id)  # the API's read: queued
        s.execute(Version.__table__.update().where(Version.id == version_id)
                  .values(state=State.solving.value, claimed_by="runner-a"))
        assert request_cancel(s, seen, utcnow()) is State.solving
    assert _state(db, version_id) == "solving"
    with db.session() as s:
        assert cancels_for(s, "runner-a") == [version_id]


def test_a_dead_runners_builds_end_as_they_were_asked(db: Database) -> None:
    """Before: a build being cancelled when its runner died ended 'failed (interrupted)'."""
    from envyard.service.runners import settle

    cancelling, running = _version(db, State.installing, "dead"), _version(db, State.solving,
                                                                            "dead")
    handed_back = _version(db, State.queued, "dead")
    with db.session(write=True) as s:
        for vid in (cancelling, handed_back):
            s.get(Version, vid).cancel_requested_at = utcnow()  # type: ignore[union-attr]
    assert settle(db, ["dead"]) == 3
    assert [_state(db, v) for v in (cancelling, running, handed_back)] == [
        "cancelled", "failed", "cancelled"]


def test_the_database_holds_only_states(empty_db: Database) -> None:
    """The state column is typed: a row reads back as a ``State``, and a write of any other
    word (a hand-made UPDATE, a bug in a migration) is refused by the database itself."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    migrate(empty_db.engine)
    with empty_db.session(write=True) as s:
        ns = Namespace(name="typed")
        s.add(ns)
        s.flush()
        env = Environment(namespace_id=ns.id, name="states")
        s.add(env)
        s.flush()
        for number, state in enumerate(State, 1):  # every state is storable
            s.add(Version(environment_id=env.id, number=number, kind="spec", state=state))
    with empty_db.session() as s:
        assert [v.state for v in s.query(Version).order_by(Version.number)] == list(State)
        assert all(type(v.state) is State for v in s.query(Version))
    for column in ("state", "state_before_gc"):
        with pytest.raises(IntegrityError), empty_db.session(write=True) as s:
            s.execute(text(f"UPDATE versions SET {column} = 'readdy'"))


def _writes(attribute: str) -> dict[str, int]:
    """Where the service assigns ``<row>.<attribute>`` or sets it in an UPDATE (file ->
    line of the first write)."""
    import ast

    from tests.conftest import REPO

    found: dict[str, int] = {}
    for path in sorted((REPO / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign)
                       else [])
            names = [t for target in targets
                     for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
            if any(isinstance(t, ast.Attribute) and t.attr == attribute for t in names) or (
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "values"  # an UPDATE … SET attribute = …
                    and any(k.arg == attribute for k in node.keywords)):
                found.setdefault(str(path.relative_to(REPO)), node.lineno)
    return found


def test_one_owner_writes_a_versions_state_and_one_moves_current() -> None:
    """A version's state changes only through ``transitions`` (``move`` and ``become``), and
    ``current`` only through ``current`` (pointer, link, kernel, image tag): a new module
    that edits either by hand fails here."""
    assert set(_writes("state")) == {"service/transitions.py"}, _writes("state")
    assert set(_writes("current_version")) == {"service/current.py"}, \
        _writes("current_version")
    from tests.conftest import REPO

    movers = {str(p.relative_to(REPO)) for p in (REPO / "service").rglob("*.py")
              if "current_link(" in p.read_text() or "write_kernelspecs(" in p.read_text()
              or "retag_current(" in p.read_text()}
    # (images: the tag's mechanics; spawnable names the link for a server's PATH, reading)
    assert movers == {"service/current.py", "service/images.py", "service/spawnable.py"}
    assert "point(" not in (REPO / "service" / "spawnable.py").read_text()


@pytest.mark.parametrize(("before", "after"),
                         list(itertools.product([None, *ImageState], ImageState)))
def test_every_image_edge(before: ImageState | None, after: ImageState) -> None:
    """An image's life: a rebuild may start from ready or failed, never twice at once from
    a request (building -> building is only the runner taking it up); a finished image
    never becomes another finished state without being built again."""
    import types

    version = types.SimpleNamespace(image=None if before is None else
                                    {"state": before.value, "repository": "r"})
    if after in IMAGE_TRANSITIONS[before]:
        set_image(version, after, repository="r", digest="sha256:x")
        assert version.image == {"state": after.value, "repository": "r", "digest": "sha256:x"}
        assert image_state(version) is after
    else:
        with pytest.raises(IllegalTransition):
            set_image(version, after, repository="r")
        assert image_state(version) is before
    assert (ImageState.ready in IMAGE_TRANSITIONS[before]) is (before is ImageState.building)


def test_an_image_settled_meanwhile_keeps_its_answer(db: Database) -> None:
    """Found by review: a runner that took this process for dead fails its image build as
    interrupted; the push finishing afterwards raised IllegalTransition out of a stage that
    must never raise. The settled answer now stands and the build says so."""
    from envyard.service.images import _set_image

    version_id = _version(db, State.ready)
    with db.session(write=True) as s:
        v = s.get(Version, version_id)
        set_image(v, ImageState.building, repository="r")
        set_image(v, ImageState.failed, repository="r", error="interrupted")
    assert _set_image(db, version_id, ImageState.ready, repository="r") is False
    assert _set_image(db, version_id, ImageState.failed, repository="r") is False
    with db.session() as s:
        v = s.get(Version, version_id)
        assert v is not None and v.image == {"repository": "r", "error": "interrupted",
                                             "state": "failed"}
    assert _set_image(db, version_id, ImageState.building, repository="r") is True
