"""What every artifact store does: conditional, checksummed puts; stat; read; signed URLs.

Keys are relative paths (``packs/<fingerprint>.tar.zst``, ``builds/<ns>/<name>/<N>/…``).
A put creates the object only if the key is free; if it is taken by the same bytes (the
sha256 stored with every object) the put is a no-op, otherwise it is a conflict, so two
writers never replace each other's artifact with different bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envyard.service.errors import ArtifactConflict, StorageError

CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None  # None when the backend does not know it (local files are not hashed)


@contextlib.contextmanager
def backend_errors(uri: str, action: str, errors: tuple[type[BaseException], ...]
                   ) -> Iterator[None]:
    """The client library's failures (unreachable endpoint, no bucket, denied) as one
    clear ``StorageError`` naming what was being done where."""
    try:
        yield
    except errors as exc:
        raise StorageError(f"cannot {action} {uri}: {type(exc).__name__}: {exc}") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """Keys are ours, but a bad one must never escape the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"bad artifact key {key!r}")
    return key


class ArtifactStore(ABC):
    """One backend. ``local`` is true when artifacts already live on the shared volume."""

    local = False

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where the object is, for people and the artifacts table."""

    @abstractmethod
    def _create(self, key: str, path: Path, sha256: str, overwrite: bool) -> bool:
        """Upload; return False if the key was taken (only when not ``overwrite``)."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None: ...

    @abstractmethod
    def iter_bytes(self, key: str) -> Iterator[bytes]: ...

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the object; False if there was none."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]: ...

    def signed_url(self, key: str, filename: str, seconds: int) -> str | None:
        """A time-limited URL that reads the object without envyard; None if unsupported."""
        return None

    def put(self, key: str, path: Path, *, overwrite: bool = False) -> StoredObject:
        """Store ``path`` under ``key``: created if free, a no-op if the same bytes are
        there, ``ArtifactConflict`` if different ones are (unless ``overwrite``). A look
        first saves uploading what is there; the create itself is still conditional."""
        check_key(key)
        sha256 = file_sha256(path)
        there = None if overwrite else self.stat(key)
        if there is None:
            if self._create(key, path, sha256, overwrite):
                return StoredObject(key, path.stat().st_size, sha256)
            there = self.stat(key)  # someone else created it meanwhile
            if there is None:
                raise ArtifactConflict(f"{self.uri(key)} was written and removed while we "
                                       "wrote it; try again")
        theirs = there.sha256 if there.sha256 is not None else self._sha256_of(key)
        if theirs == sha256:
            return there
        raise ArtifactConflict(f"{self.uri(key)} already holds different bytes "
                               f"(sha256 {theirs}, ours {sha256})")

    def _sha256_of(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.iter_bytes(key):
            digest.update(chunk)
        return digest.hexdigest()

    def download(self, key: str, dest: Path) -> StoredObject:
        """Copy the object to ``dest`` (atomically) and check its sha256 if recorded."""
        there = self.stat(key)
        if there is None:
            raise StorageError(f"{self.uri(key)} does not exist")
        tmp = dest.with_name(f".{dest.name}.download")
        digest = hashlib.sha256() if there.sha256 is not None else None
        with tmp.open("wb") as f:
            for chunk in self.iter_bytes(key):
                if digest is not None:
                    digest.update(chunk)
                f.write(chunk)
        if digest is not None and digest.hexdigest() != there.sha256:
            tmp.unlink()
            raise StorageError(f"{self.uri(key)} does not match its sha256 (corrupted)")
        tmp.replace(dest)
        return there


class BucketStore(ArtifactStore):
    """A remote store: objects named ``<prefix><key>`` in one bucket."""

    scheme = ""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket_name, self.prefix = bucket, prefix

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _url(self, name: str) -> str:
        return f"{self.scheme}://{self.bucket_name}/{name}"

    def uri(self, key: str) -> str:
        return self._url(self._name(key))
