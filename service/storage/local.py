"""The default store: artifacts are files on the shared volume, under the volume's root.

A put copies to a temporary name and hard-links it into place: ``link`` fails when the
name exists, which makes the create conditional without any locking.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from envyard.service.storage.base import CHUNK, ArtifactStore, StoredObject, check_key


class LocalStore(ArtifactStore):
    local = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def _create(self, key: str, path: Path, sha256: str, overwrite: bool) -> bool:
        final = self.path(key)
        if final.exists() and path.resolve() == final.resolve():
            return True  # written in place (the volume is the store)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}")
        try:
            shutil.copyfile(path, tmp)
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            if overwrite:
                tmp.replace(final)
                return True
            try:
                os.link(tmp, final)
            except FileExistsError:
                return False
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def stat(self, key: str) -> StoredObject | None:
        try:
            return StoredObject(key, self.path(key).stat().st_size, None)
        except FileNotFoundError:
            return None

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with self.path(key).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if base.is_file():
            yield prefix
            return
        for p in sorted(base.rglob("*")) if base.is_dir() else ():
            if p.is_file() and not p.name.startswith("."):
                yield p.relative_to(self.root).as_posix()
