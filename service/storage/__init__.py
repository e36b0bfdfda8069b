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
    if settings.storage == "gcs":
        from envyard.service.storage.gcs import GCSStore

        return GCSStore(settings.storage_bucket, settings.storage_prefix,
                        project=settings.storage_project, endpoint=settings.storage_endpoint,
                        credentials=settings.storage_credentials)
    if settings.storage == "s3":
        from envyard.service.storage.s3 import S3Store

        return S3Store(settings.storage_bucket, settings.storage_prefix,
                       endpoint=settings.storage_endpoint, region=settings.storage_region,
                       access_key_id=settings.storage_access_key_id,
                       secret_access_key=settings.storage_secret_access_key)
    from envyard.service.storage.local import LocalStore

    return LocalStore(settings.root)


def pack_key(fingerprint: str) -> str:
    return f"packs/{fingerprint}.tar.zst"


def build_key(namespace: str, name: str, number: int, filename: str) -> str:
    """spec, lock and log of one version: the same relative path as on the volume."""
    return f"builds/{namespace}/{name}/{number}/{filename}"


__all__ = ["ArtifactConflict", "ArtifactStore", "StorageError", "StoredObject", "build_key",
           "open_store", "pack_key"]
