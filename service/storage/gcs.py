"""Google Cloud Storage (``google-cloud-storage``).

Small objects are one upload with ``ifGenerationMatch=0`` (create only). Large ones are
uploaded as parts in parallel to temporary names and composed into the final name, again
with ``ifGenerationMatch=0``; the parts are then deleted. Every upload is verified by
CRC32C, and the sha256 goes into the object's metadata. Signed URLs need a service-account
key (``storage.credentials``); without one, downloads stream through envyard.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from envyard.service.storage.base import (
    CHUNK,
    BucketStore,
    StorageError,
    StoredObject,
    backend_errors,
)

SIMPLE_MAX = 8 << 20  # the client's own limit for one-request uploads
MAX_COMPONENTS = 32  # compose takes at most 32 sources
PART_MIN = 8 << 20  # one request each while 32 parts cover the file
THREADS = 4


def _errors() -> tuple[type[BaseException], ...]:
    """What the Google client raises when the service fails or cannot be reached."""
    import requests
    from google.api_core import exceptions
    from google.auth import exceptions as auth

    return (exceptions.GoogleAPIError, auth.GoogleAuthError, requests.RequestException)


class _Window(io.RawIOBase):
    """``length`` bytes of a file from ``start``, as a stream of its own (the uploader
    wants position 0 to be the part's first byte)."""

    def __init__(self, f: BinaryIO, start: int, length: int) -> None:
        self.f, self.start, self.length, self.pos = f, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, min(self.length, base + offset))
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.length - self.pos)
        if want <= 0:
            return 0
        self.f.seek(self.start + self.pos)
        data = self.f.read(want)
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


class GCSStore(BucketStore):
    scheme = "gs"

    def __init__(self, bucket: str, prefix: str = "", *, project: str | None = None,
                 endpoint: str | None = None, credentials: Path | None = None) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        super().__init__(bucket, prefix)
        from google.oauth2 import service_account

        self.signer = (service_account.Credentials.from_service_account_file(str(credentials))
                       if credentials else None)
        options = {"api_endpoint": endpoint} if endpoint else None
        creds: Any = AnonymousCredentials() if endpoint else self.signer
        self.endpoint = endpoint
        self.client = storage.Client(project=project or "envyard", credentials=creds,
                                     client_options=options)
        self.bucket = self.client.bucket(bucket)

    def _create(self, key: str, path: Path, sha256: str, overwrite: bool) -> bool:
        from google.api_core import exceptions

        size = path.stat().st_size
        blob = self.bucket.blob(self._name(key))
        blob.metadata = {"sha256": sha256}
        condition = None if overwrite else 0
        try:
            if size <= SIMPLE_MAX:
                blob.upload_from_filename(str(path), if_generation_match=condition,
                                          checksum="crc32c")
            else:
                self._composite(blob, path, size, condition)
        except exceptions.PreconditionFailed:
            return False
        except _errors() as exc:
            raise StorageError(f"cannot upload to {self.uri(key)}: {type(exc).__name__}: "
                               f"{exc}") from exc
        return True

    def _composite(self, blob: Any, path: Path, size: int, condition: int | None) -> None:
        """Parts in parallel, then one compose: the final name appears whole or not at all."""
        part = max(PART_MIN, math.ceil(size / MAX_COMPONENTS))
        base = f"{self.prefix}.uploads/{uuid.uuid4().hex}"
        parts = [self.bucket.blob(f"{base}/{i:02d}") for i in range(math.ceil(size / part))]

        def send(i: int) -> None:
            length = min(part, size - i * part)
            with path.open("rb") as f, _Window(f, i * part, length) as window:
                parts[i].upload_from_file(window, size=length, checksum="crc32c")

        try:
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(send, range(len(parts))))
            blob.compose(parts, if_generation_match=condition)
        finally:
            for p in parts:
                with contextlib.suppress(Exception):  # a part that never arrived
                    p.delete()

    def stat(self, key: str) -> StoredObject | None:
        with backend_errors(self.uri(key), "read", _errors()):
            blob = self.bucket.get_blob(self._name(key))
        if blob is None:
            return None
        return StoredObject(key, int(blob.size or 0), (blob.metadata or {}).get("sha256"))

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with backend_errors(self.uri(key), "read", _errors()), \
                self.bucket.blob(self._name(key)).open("rb", chunk_size=CHUNK * 8) as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> bool:
        from google.api_core import exceptions

        with backend_errors(self.uri(key), "delete", _errors()):
            try:
                self.bucket.blob(self._name(key)).delete()
            except exceptions.NotFound:
                return False
        return True

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        with backend_errors(self._url(self.prefix + prefix), "list",
                            _errors()):
            for blob in self.client.list_blobs(self.bucket_name,
                                               prefix=self.prefix + prefix):
                yield blob.name[len(self.prefix):]

    def signed_url(self, key: str, filename: str, seconds: int) -> str | None:
        if self.signer is None:
            return None
        kw = {"api_access_endpoint": self.endpoint} if self.endpoint else {}
        return self.bucket.blob(self._name(key)).generate_signed_url(
            version="v4", expiration=dt.timedelta(seconds=seconds), credentials=self.signer,
            response_disposition=f'attachment; filename="{filename}"', **kw)
