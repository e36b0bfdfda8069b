"""Artifact storage behind one interface: the shared volume (default), GCS or S3.

``open_store(settings)`` picks the backend; ``keys`` names where each artifact goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envyard.service.errors import ArtifactConflict, StorageError
from envyard.service.storage.base import ArtifactStore, StoredObject

if TYPE_CHECKING:
    from envyard.service.settings import Settings


def open_store(settings: Settings) -> ArtifactStore:
    if settings.storage.backend == "gcs":
        from envyard.service.storage.gcs import GCSStore

        return GCSStore(settings.storage.bucket, settings.storage.prefix,
                        project=settings.storage.project, endpoint=settings.storage.endpoint,
                        credentials=settings.storage.credentials)
    if settings.storage.backend == "s3":
        from envyard.service.storage.s3 import S3Store

        return S3Store(settings.storage.bucket, settings.storage.prefix,
                       endpoint=settings.storage.endpoint, region=settings.storage.region,
                       access_key_id=settings.storage.access_key_id,
                       secret_access_key=settings.storage.secret_access_key)
    from envyard.service.storage.local import LocalStore

    return LocalStore(settings.root)


def pack_key(fingerprint: str) -> str:
    return f"packs/{fingerprint}.tar.zst"


def build_key(namespace: str, name: str, number: int, filename: str) -> str:
    """spec, lock and log of one version: the same relative path as on the volume."""
    return f"builds/{namespace}/{name}/{number}/{filename}"


__all__ = ["ArtifactConflict", "ArtifactStore", "StorageError", "StoredObject", "build_key",
           "open_store", "pack_key"]
