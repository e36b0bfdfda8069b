"""OCI image pieces: media types, image references, descriptors, and a content-addressed
blob store laid out as an OCI image layout (so `skopeo copy oci:DIR:TAG` reads it).

Manifests and configs are written as canonical JSON (sorted keys, no spaces): the same
content always has the same digest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envyard.builder.errors import ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)

_REF_RE = re.compile(r"^(?:(?P<registry>[^/]+)/)?(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                     r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
                     r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ImageRef:
    """``registry/repository[:tag][@digest]``; no registry part means Docker Hub."""

    registry: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        m = _REF_RE.match(text.strip())
        if not m:
            raise ImageError(f"'{text}' is not an image reference (registry/name:tag)")
        registry, repo = m["registry"], m["repo"]
        if registry and not ("." in registry or ":" in registry or registry == "localhost"):
            registry, repo = None, f"{registry}/{repo}"  # "library/x": a path, not a host
        if not registry:
            registry = "registry-1.docker.io"
            repo = repo if "/" in repo else f"library/{repo}"
        return cls(registry, repo, m["digest"] or m["tag"] or "latest")

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        return cls(d["mediaType"], d["digest"], int(d["size"]))


class BlobStore:
    """``<dir>/blobs/sha256/<hex>``, written atomically; an OCI image layout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = root / "oci-layout"
        if not layout.exists():
            layout.write_text('{"imageLayoutVersion":"1.0.0"}')

    def path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[a-f0-9]{64}", hexdigest):
            raise ImageError(f"unsupported digest {digest!r}")
        return self.root / "blobs" / "sha256" / hexdigest

    @contextlib.contextmanager
    def lock(self, *, shared: bool) -> Iterator[None]:
        """Builds hold the store shared from first layer to last push; pruning holds it
        exclusive, so no blob a build will push disappears under it."""
        with (self.root / ".envyard-store-lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def temp(self) -> Path:
        return self.root / "blobs" / f".tmp-{uuid.uuid4().hex}"

    def commit(self, tmp: Path, digest: str) -> None:
        os.replace(tmp, self.path(digest))

    def put(self, data: bytes, media_type: str) -> Descriptor:
        digest = digest_of(data)
        if not self.has(digest):
            tmp = self.temp()
            tmp.write_bytes(data)
            self.commit(tmp, digest)
        return Descriptor(media_type, digest, len(data))

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def tag(self, name: str, manifest: Descriptor) -> None:
        """Name a manifest in ``index.json`` (replacing an older one of that name)."""
        index_path = self.root / "index.json"
        index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.exists() else {
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        key = "org.opencontainers.image.ref.name"
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get(key) != name]
        index["manifests"].append({**manifest.to_json(), "annotations": {key: name}})
        tmp = self.temp()
        tmp.write_bytes(canonical(index))
        os.replace(tmp, index_path)

    def forget(self, unwanted: Callable[[str], bool]) -> None:
        """Drop names from ``index.json`` whose manifest digest ``unwanted`` picks."""
        index_path = self.root / "index.json"
        if not index_path.exists():
            return
        index = json.loads(index_path.read_text())
        index["manifests"] = [m for m in index["manifests"] if not unwanted(m["digest"])]
        tmp = self.temp()
        tmp.write_bytes(canonical(index))
        os.replace(tmp, index_path)
