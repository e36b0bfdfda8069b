"""Images of versions: built after a version is ready, tagged ``v<N>`` (and ``current`` by
``envyard.service.current``).

Opt-in per namespace (``Namespace.images``) or environment (``Environment.images``, None
inherits). The image stage runs in the build, after publishing: a failure fails only the
image (``Version.image`` says why), the environment stays ready and usable. Rollback moves
the ``current`` tag; GC deletes a collected version's manifest unless a live version of
the same repository has the same digest (one lock, one digest).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from envyard.builder.errors import EnvyardError, ImageError
from envyard.builder.image import ImageSpec, build_image, push_image
from envyard.builder.install import STAMP
from envyard.builder.layout import Layout
from envyard.builder.oci import OCI_MANIFEST, BlobStore, ImageRef
from envyard.builder.registry import Registry
from envyard.service.buildlog import BuildLog
from envyard.service.db import Database
from envyard.service.models import Version
from envyard.service.settings import Settings
from envyard.service.transitions import IllegalTransition, ImageState, State, set_image


def repository(settings: Settings, namespace: str, name: str) -> str:
    """``<prefix><ns>-<name>``, lower-cased into the registry's name grammar."""
    raw = f"{namespace}-{name}".lower()
    return settings.image.repository_prefix + re.sub(r"[._-]{2,}", "-", raw)


def target_registry(settings: Settings) -> Registry:
    if not settings.image.registry:
        raise ImageError("no registry is configured (image.registry)")
    return Registry(settings.image.registry, username=settings.image.registry_username,
                    password=settings.image.registry_password,
                    insecure=settings.image.registry_insecure,
                    ca_bundle=settings.image.registry_ca_bundle)


def _base_registry(settings: Settings, target: Registry) -> Registry:
    host = ImageRef.parse(settings.image.base).registry
    if host == target.host:
        return target
    return Registry(host, insecure=settings.image.registry_insecure,
                    ca_bundle=settings.image.registry_ca_bundle)


def _set_image(db: Database, version_id: int, after: ImageState, **info: Any) -> bool:
    """Record the image's outcome; False when it was settled meanwhile (a runner that took
    this process for dead failed it as interrupted): that answer stands."""
    with db.session(write=True) as s:
        v = s.get(Version, version_id, with_for_update=True)
        if v is None:
            return False
        try:
            set_image(v, after, **info)
        except IllegalTransition:
            return False
        return True


SETTLED = "image: its state was settled meanwhile (taken as interrupted); build it again"


def build_stage(db: Database, settings: Settings, layout: Layout, version_id: int,
                where: tuple[str, str, int], prefix: Path, lock_text: str,
                log: BuildLog, is_current: Callable[[], bool]) -> None:
    """Build and push the version's image, tagged ``v<N>`` (and ``current`` if
    ``is_current()`` says so once it is built: ``envyard.service.current`` decides);
    record the outcome. Never raises."""
    ns, name, number = where
    repo = repository(settings, ns, name)
    if not _set_image(db, version_id, ImageState.building, repository=repo):
        log.line(SETTLED)
        return
    log.line(f"image: building {repo}:v{number} on {settings.image.base or '(no base)'}")
    start = time.perf_counter()
    try:
        if not settings.image.base:
            raise ImageError("no base image is configured (image.base)")
        created = dt.datetime.fromtimestamp((prefix / STAMP).stat().st_mtime, dt.UTC)
        spec = ImageSpec(base=settings.image.base, dest=f"{settings.image.root}/{ns}/{name}",
                         title=f"{ns}/{name}", created=created,
                         lock_sha256=hashlib.sha256(lock_text.encode()).hexdigest(),
                         max_layers=settings.image.layers)
        store = BlobStore(layout.images)
        with target_registry(settings) as target, store.lock(shared=True):
            base = _base_registry(settings, target)
            try:
                image = build_image(prefix, spec, store, base,
                                    progress=lambda i, n: log.progress("image", i, n))
                tags = [f"v{number}", *(["current"] if is_current() else [])]
                sent = push_image(image, store, target, repo, tags, base)
                store.tag(f"{repo}:v{number}", image.manifest)
                if settings.image.docker_host:
                    from envyard.builder.docker_engine import load_into_engine

                    load_into_engine(image, store, base, [f"{target.host}/{repo}:{t}"
                                                          for t in tags],
                                     settings.image.docker_host)
                    log.line(f"image: loaded into the engine at {settings.image.docker_host}")
            finally:
                if base is not target:
                    base.close()
        seconds = round(time.perf_counter() - start, 3)
        info = {"repository": repo, "reference": f"{target.host}/{repo}:v{number}",
                "digest": image.manifest.digest, "tags": tags, "bytes_pushed": sent,
                "layers": len(image.layers) + len(image.base_layers), "seconds": seconds}
        if not _set_image(db, version_id, ImageState.ready, **info):
            log.line(SETTLED)
            return
        log.line(f"image: pushed {target.host}/{repo}:v{number} ({image.manifest.digest[:19]}, "
                 f"{sent} bytes sent, {len(image.layers)} environment layers) in {seconds} s")

    except Exception as exc:  # the environment stays ready and usable: say what happened
        error = str(exc) if isinstance(exc, EnvyardError) \
            else f"internal error: {type(exc).__name__}: {exc}"
        if not _set_image(db, version_id, ImageState.failed, repository=repo, error=error):
            log.line(SETTLED)
            return
        log.line(f"image: failed (the environment is ready regardless): {error}")


def retag_current(settings: Settings, layout: Layout, image: dict[str, Any] | None) -> str:
    """Point the ``current`` tag at this version's image; say what happened (for
    ``envyard.service.current``, the one mover of ``current``)."""
    if not image or image.get("state") != ImageState.ready or not settings.image.registry:
        return "no image"
    try:
        manifest = BlobStore(layout.images).read(image["digest"])
        with target_registry(settings) as target:
            target.put_manifest(image["repository"], "current", manifest, OCI_MANIFEST)
    except (EnvyardError, OSError) as exc:
        return f"image tag current not moved: {exc}"
    return f"image {image['repository']}:current -> {image['digest'][:19]}"


def delete_images(settings: Settings, doomed: list[dict[str, Any]],
                  live_digests: set[tuple[str, str]]) -> list[str]:
    """Delete the manifests of collected versions no live version shares; what failed."""
    problems: list[str] = []
    targets = {(i["repository"], i["digest"]) for i in doomed
               if i.get("state") == ImageState.ready and i.get("digest")} - live_digests
    if not targets or not settings.image.registry:
        return problems
    try:
        with target_registry(settings) as registry:
            for repo, digest in sorted(targets):
                try:
                    registry.delete_manifest(repo, digest)
                except ImageError as exc:
                    problems.append(f"{repo}@{digest[:19]}: {exc}")
    except ImageError as exc:
        problems.append(str(exc))
    return problems


def prune_store(db: Database, layout: Layout) -> int:
    """Remove blobs (and layer keys) no live version's image uses; returns blobs removed."""
    if not (layout.images / "blobs").is_dir():
        return 0
    store = BlobStore(layout.images)
    with store.lock(shared=False):
        with db.session() as s:
            live = [i for (i,) in s.execute(select(Version.image).where(
                Version.state.not_in([State.deleting, State.deleted]),
                Version.image.is_not(None)))]
        keep: set[str] = set()
        for image in live:
            digest = image.get("digest")
            if digest and store.has(digest):
                manifest = json.loads(store.read(digest))
                keep |= {digest, manifest["config"]["digest"],
                         *(layer["digest"] for layer in manifest["layers"])}
        removed = 0
        for blob in (layout.images / "blobs" / "sha256").iterdir():
            if f"sha256:{blob.name}" not in keep:
                blob.unlink(missing_ok=True)
                removed += 1
        for leftover in (layout.images / "blobs").glob(".tmp-*"):  # from killed builds
            leftover.unlink(missing_ok=True)
        keys = layout.images / "layer-keys"
        for key in keys.iterdir() if keys.is_dir() else ():
            if json.loads(key.read_text())["descriptor"]["digest"] not in keep:
                key.unlink(missing_ok=True)
        store.forget(lambda digest: digest not in keep)
        return removed
