"""The environments a hub user may start a server in: readable, with a ready current
version that has a kernel. One answer (``GET /api/v1/spawn/environments``) feeds the
embedded hub's spawn form, KubeSpawner's ``profile_list`` (environments with an image)
and jhub-apps' list (``service.spawn`` holds the hub-side helpers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.kernels import LANGUAGES, kernel_dir, read_kernelspec
from envyard.builder.layout import Layout
from envyard.service.models import Environment, Namespace, Version
from envyard.service.settings import Settings
from envyard.service.transitions import State


@dataclass(frozen=True)
class Spawnable:
    namespace: str
    name: str
    version: int
    kernel_name: str
    display_name: str
    prefix: str
    image: str | None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def profile(self) -> dict[str, Any] | None:
        """A KubeSpawner ``profile_list`` entry: the user pod runs the environment's image
        (the slug is the environment, so a choice reads the same in every list)."""
        if self.image is None:
            return None
        return {"display_name": self.display_name, "slug": self.ref,
                "description": f"envyard environment {self.ref}, version {self.version}",
                "kubespawner_override": {"image": self.image, "environment": {
                    "ENVYARD_ENVIRONMENT": self.ref}}}

    def as_dict(self) -> dict[str, Any]:
        return {"environment": self.ref, "namespace": self.namespace, "name": self.name,
                "version": self.version, "kernel_name": self.kernel_name,
                "display_name": self.display_name, "prefix": self.prefix,
                "image": self.image, "profile": self.profile()}


def spawnable(session: Session, settings: Settings,
              readable: set[str] | None) -> list[Spawnable]:
    """The environments of ``readable`` namespaces (None: all) whose current version is
    ready and has a published kernel, by namespace and name."""
    if readable is not None and not readable:
        return []
    query = (select(Namespace.name, Environment.name, Version)
             .join(Environment, Environment.namespace_id == Namespace.id)
             .join(Version, (Version.environment_id == Environment.id)
                   & (Version.number == Environment.current_version))
             .where(Environment.deleted_at.is_(None), Version.state == State.ready)
             .order_by(Namespace.name, Environment.name))
    if readable is not None:
        query = query.where(Namespace.name.in_(sorted(readable)))
    layout = Layout(settings.root)
    out = []
    for ns, name, version in session.execute(query):
        language = next((lang for lang in LANGUAGES  # python's, else R's
                         if read_kernelspec(layout.jupyter, ns, name, lang)), None)
        if language is None:
            continue
        spec = read_kernelspec(layout.jupyter, ns, name, language) or {}
        image = version.image or {}
        out.append(Spawnable(
            ns, name, version.number, kernel_dir(layout.jupyter, ns, name, language).name,
            str(spec.get("display_name") or f"{ns}/{name}"),
            str(layout.current_link(ns, name)),  # (PATH follows a rollback, as kernels do)
            image.get("reference") if image.get("state") == "ready" else None))
    return out
