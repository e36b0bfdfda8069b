"""A ready environment as an OCI image: base image + the environment's layers, pushed.

The base is pulled by reference (its manifest, config and, when it lives elsewhere, its
layers); the environment goes to ``dest`` with paths rewritten (``builder.layers``); the
config gains ``PATH``/``CONDA_PREFIX`` and labels, the manifest annotations (lock hash,
envyard version, created). ``created`` is the prefix's build time and no version number
goes in, so one lock always gives one manifest digest.
"""

from __future__ import annotations

import datetime as dt
import json
import platform as host_platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envyard.builder.errors import ImageError
from envyard.builder.layers import Layer, env_layers
from envyard.builder.oci import (
    DOCKER_LAYER_GZIP,
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    BlobStore,
    Descriptor,
    ImageRef,
    canonical,
    digest_of,
)
from envyard.builder.registry import Registry

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OCI_TYPES = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
              "application/vnd.docker.image.rootfs.diff.tar":
              "application/vnd.oci.image.layer.v1.tar"}


@dataclass(frozen=True)
class ImageSpec:
    base: str
    dest: str
    title: str
    lock_sha256: str
    created: dt.datetime
    max_layers: int = 64


@dataclass
class BuiltImage:
    base: ImageRef
    manifest: Descriptor
    manifest_bytes: bytes
    config: Descriptor
    base_layers: list[Descriptor]
    layers: list[Layer]
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def blobs(self) -> list[Descriptor]:
        return [*self.base_layers, *(layer.descriptor for layer in self.layers), self.config]


def envyard_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("envyard")
    except PackageNotFoundError:
        return "0+unknown"


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(host_platform.machine(),
                                                      host_platform.machine())


def pull_base(ref: ImageRef, registry: Registry, store: BlobStore
              ) -> tuple[str, dict[str, Any], list[Descriptor]]:
    """(manifest digest, config, layer descriptors) of the base, config kept in ``store``."""
    data, media = registry.get_manifest(ref.repository, ref.reference)
    doc = json.loads(data)
    if media in INDEX_TYPES or "manifests" in doc:
        wanted = [m for m in doc.get("manifests", ())
                  if m.get("platform", {}).get("os") == "linux"
                  and m.get("platform", {}).get("architecture") == _arch()]
        if not wanted:
            raise ImageError(f"base {ref} has no linux/{_arch()} image")
        data, media = registry.get_manifest(ref.repository, wanted[0]["digest"])
        doc = json.loads(data)
    registry.pull_blob(ref.repository, doc["config"]["digest"], store)
    config = json.loads(store.read(doc["config"]["digest"]))
    layers = [Descriptor(_OCI_TYPES.get(d["mediaType"], d["mediaType"]), d["digest"],
                         int(d["size"])) for d in doc["layers"]]
    return digest_of(data), config, layers


def compose(spec: ImageSpec, base: ImageRef, base_digest: str, base_config: dict[str, Any],
            base_layers: list[Descriptor], layers: list[Layer], store: BlobStore) -> BuiltImage:
    created = spec.created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations = {
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.title": spec.title,
        "org.opencontainers.image.base.name": str(base),
        "org.opencontainers.image.base.digest": base_digest,
        "dev.envyard.lock.sha256": spec.lock_sha256,
        "dev.envyard.version": envyard_version(),
    }
    config = json.loads(json.dumps(base_config))
    run = config.setdefault("config", {})
    env = [e for e in run.get("Env") or () if not e.startswith(("PATH=", "CONDA_PREFIX="))]
    base_path = next((e[5:] for e in run.get("Env") or () if e.startswith("PATH=")),
                     DEFAULT_PATH)
    run["Env"] = [f"PATH={spec.dest}/bin:{base_path}", f"CONDA_PREFIX={spec.dest}", *env]
    run["Labels"] = {**(run.get("Labels") or {}), **annotations}
    config["created"] = created
    config.setdefault("architecture", _arch())
    config.setdefault("os", "linux")
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(layer.diff_id for layer in layers)]
    if "history" in config:
        config["history"] = [*config["history"], *({
            "created": created, "created_by": "envyard: " + ", ".join(layer.packages or
                                                                       ("unowned files",))}
            for layer in layers)]
    config_desc = store.put(canonical(config), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc.to_json(),
                "layers": [d.to_json() for d in (*base_layers,
                                                 *(layer.descriptor for layer in layers))],
                "annotations": annotations}
    data = canonical(manifest)
    return BuiltImage(base, store.put(data, OCI_MANIFEST), data, config_desc, base_layers,
                      layers, annotations)


def build_image(prefix: Path, spec: ImageSpec, store: BlobStore, base_registry: Registry,
                progress: Any = None) -> BuiltImage:
    """Pull the base's metadata and write the environment's layers; nothing is pushed."""
    base = ImageRef.parse(spec.base)
    base_digest, base_config, base_layers = pull_base(base, base_registry, store)
    if len(base_layers) + spec.max_layers > 125:
        raise ImageError(f"base {base} has {len(base_layers)} layers; with up to "
                         f"{spec.max_layers} more the engines' limit (125) could be passed")
    layers = env_layers(prefix, spec.dest, store, max_layers=spec.max_layers,
                        built=int(spec.created.timestamp()), progress=progress)
    return compose(spec, base, base_digest, base_config, base_layers, layers, store)


def push_image(image: BuiltImage, store: BlobStore, registry: Registry, repository: str,
               tags: list[str], base_registry: Registry | None = None) -> int:
    """Upload what the repository lacks and tag the manifest; returns blob bytes sent."""
    before = registry.bytes_sent
    same_registry = base_registry is None or base_registry.host == registry.host
    for desc in image.base_layers:
        if registry.has_blob(repository, desc.digest):
            continue
        if same_registry and registry.mount_blob(repository, desc.digest,
                                                 image.base.repository):
            continue
        (base_registry or registry).pull_blob(image.base.repository, desc.digest, store)
        registry.push_blob(repository, desc, store)
    for desc in (*(layer.descriptor for layer in image.layers), image.config):
        registry.push_blob(repository, desc, store)
    for tag in tags:
        registry.put_manifest(repository, tag, image.manifest_bytes, OCI_MANIFEST)
    return registry.bytes_sent - before
