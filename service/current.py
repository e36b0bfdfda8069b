"""Which version of an environment its users get, and the one place that moves it.

``current`` is four things that must agree: the database pointer
(``Environment.current_version``), the ``current`` link on the volume, the environment's
Jupyter kernelspec and its image's ``current`` tag. ``point_at`` writes the pointer inside
the caller's transaction (publishing a build marks it ready in the same one); ``show``
makes the volume agree after the commit; a crash in between is repaired at start, where
``show`` runs for every environment. ``make_current`` is rollback: all four at once;
``withdraw`` and ``hide`` take them away from a deleted environment.
``publish_image`` tags a new image ``current`` if its version is current by then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envyard.builder.kernels import remove_kernelspecs, write_kernelspecs
from envyard.builder.layout import Layout, point
from envyard.service import audit, images
from envyard.service.auth import Principal
from envyard.service.buildlog import BuildLog
from envyard.service.catalog import find_environment, find_version
from envyard.service.db import Database
from envyard.service.errors import Conflict, NotFound
from envyard.service.models import Environment, Version
from envyard.service.settings import Settings
from envyard.service.transitions import State


def point_at(env: Environment, number: int, *, forward_only: bool = False) -> bool:
    """Set the database pointer (the only writer of ``current_version``); with
    ``forward_only`` (a build publishing), never back past a newer version; never for a
    deleted environment. True if moved."""
    if env.deleted_at is not None:
        return False
    if forward_only and env.current_version is not None and number <= env.current_version:
        return False
    env.current_version = number
    return True


def withdraw(env: Environment) -> None:
    """No version is current any more (the environment is being deleted)."""
    env.current_version = None


def hide(layout: Layout, namespace: str, name: str) -> None:
    """The volume shows no current version: no link, no kernel."""
    layout.current_link(namespace, name).unlink(missing_ok=True)
    remove_kernelspecs(layout.jupyter, namespace, name)


def show(layout: Layout, settings: Settings, namespace: str, name: str, number: int) -> str:
    """Make the volume show ``number`` as current: the link, then the kernelspec (say
    what became of the kernel)."""
    point(layout.current_link(namespace, name), str(number))
    specs = write_kernelspecs(layout.jupyter, namespace, name, number,
                              layout.version_link(namespace, name, number),
                              settings.kernel_display_name)
    if not specs:
        return "no kernel: neither ipykernel nor r-irkernel is in this environment"
    return "; ".join(f"{'' if language == 'python' else 'R '}kernel {namespace}/{name} "
                     f"(v{number}) at {spec}" for language, spec in specs.items())


def make_current(db: Database, settings: Settings, who: Principal, namespace: str,
                 name: str, number: int) -> dict[str, Any]:
    """Point ``current`` at a ready version (a rollback, or forward again): the pointer,
    the link, the kernel and the image tag; audited as ``who``'s rollback."""
    with db.session(write=True) as s:
        env = s.get(Environment, find_environment(s, namespace, name).id,
                    with_for_update=True, populate_existing=True)  # a delete may be racing
        v = find_version(s, namespace, name, number)
        if v.state != State.ready:
            raise Conflict(f"version {number} is {v.state}; only a ready version can "
                           "be current")
        if env is not None and v.number <= (env.collect_through or 0):
            raise Conflict(f"version {number} was deleted with the environment")
        before = env.current_version if env is not None else None
        if env is None or not point_at(env, v.number):
            raise NotFound(f"no environment {namespace}/{name}")
        audit.record(s, who, audit.Action.rollback, namespace, name, number,
                     previous=before)
        image = v.image
    layout = Layout(settings.root)
    return {"namespace": namespace, "name": name, "current_version": number,
            "kernel": show(layout, settings, namespace, name, number),
            "image": images.retag_current(settings, layout, image)}


def is_current(db: Database, version_id: int) -> bool:
    with db.session() as s:
        v = s.get(Version, version_id)
        env = s.get(Environment, v.environment_id) if v is not None else None
        return bool(v and env and env.current_version == v.number)


def publish_image(db: Database, settings: Settings, layout: Layout, version_id: int,
                  where: tuple[str, str, int], prefix: Path, lock_text: str,
                  log: BuildLog) -> None:
    """Build and push the version's image, tagged ``v<N>`` and, if the version is current
    once the image is built, ``current``. Never raises."""
    images.build_stage(db, settings, layout, version_id, where, prefix, lock_text, log,
                       is_current=lambda: is_current(db, version_id))


__all__ = ["hide", "is_current", "make_current", "point_at", "publish_image", "show",
           "withdraw"]
