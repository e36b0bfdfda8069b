"""Image opt-in per namespace and environment, and (re)building a version's image."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from envyard.builder.layout import Layout
from envyard.service import audit, images
from envyard.service.api.deps import DbDep, PrincipalDep, RunnerDep, SettingsDep
from envyard.service.api.params import Name, VersionNumber
from envyard.service.api.schemas import EnvironmentImages, ImageQueued, NamespaceImages
from envyard.service.buildlog import BuildLog
from envyard.service.catalog import find_environment, find_namespace, find_version
from envyard.service.current import publish_image
from envyard.service.errors import Conflict
from envyard.service.models import Role
from envyard.service.transitions import ImageState, State, image_state, set_image

router = APIRouter(prefix="/api/v1", tags=["images"])


class NamespaceImagesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class EnvironmentImagesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None  # None: follow the namespace


def _needs_registry(settings: Any) -> None:
    if not settings.image.registry:
        raise Conflict("images are not available: the service has no registry "
                       "(setting image.registry)")


@router.put("/namespaces/{namespace}/images", response_model=NamespaceImages)
def namespace_images(namespace: Name, body: NamespaceImagesIn, db: DbDep, who: PrincipalDep,
                     settings: SettingsDep) -> dict[str, Any]:
    """Build an image for every new version in the namespace (or stop doing so)."""
    who.require(namespace, Role.admin)
    if body.enabled:
        _needs_registry(settings)
    with db.session(write=True) as s:
        ns = find_namespace(s, namespace)
        ns.images = body.enabled
        audit.record(s, who, audit.Action.images_policy, namespace, enabled=body.enabled)
    return {"namespace": namespace, "images": body.enabled}


@router.put("/environments/{namespace}/{name}/images", response_model=EnvironmentImages)
def environment_images(namespace: Name, name: Name, body: EnvironmentImagesIn, db: DbDep,
                       who: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """Images for this environment on, off, or (null) as its namespace says."""
    who.require(namespace, Role.developer)
    if body.enabled:
        _needs_registry(settings)
    with db.session(write=True) as s:
        env = find_environment(s, namespace, name)
        env.images = body.enabled
        audit.record(s, who, audit.Action.images_policy, namespace, name,
                     enabled=body.enabled)
    return {"namespace": namespace, "name": name, "images": body.enabled}


@router.post("/environments/{namespace}/{name}/versions/{number}/image", status_code=202,
             response_model=ImageQueued)
def build_version_image(namespace: Name, name: Name, number: VersionNumber, db: DbDep,
                        who: PrincipalDep, settings: SettingsDep,
                        runner: RunnerDep) -> dict[str, Any]:
    """Build (or rebuild after a failure) the image of a ready version, in the background."""
    who.require(namespace, Role.developer)
    _needs_registry(settings)
    with db.session(write=True) as s:
        v = find_version(s, namespace, name, number)
        if v.state != State.ready or not v.fingerprint or not v.lock_text:
            raise Conflict(f"version {number} is {v.state}; only a ready version gets an image")
        if image_state(v) is ImageState.building:
            raise Conflict(f"the image of version {number} is being built")
        set_image(v, ImageState.building,
                  repository=images.repository(settings, namespace, name))
        v.claimed_by = runner.id  # if this process dies, another runner settles the image
        version_id, fp, lock_text = v.id, v.fingerprint, v.lock_text
        audit.record(s, who, audit.Action.image_build, namespace, name, number)
    layout = Layout(settings.root)
    log = BuildLog(layout.build_dir(namespace, name, number) / "build.log")
    runner.run_image(functools.partial(
        publish_image, db, settings, layout, version_id, (namespace, name, number),
        layout.prefix(fp), lock_text, log))
    return {"namespace": namespace, "name": name, "version": number,
            "image": ImageState.building}
