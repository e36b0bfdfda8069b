"""Bring a locked package into the shared package cache, verified against the lock's sha256.

A package enters ``pkgs/`` only after its bytes hash to what the lock says; a sidecar file
remembers the verification (size, mtime, sha256) so a warm cache is not re-hashed on every
build. A tampered lock or a swapped file is refused with both hashes named.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from builder.errors import FetchError, HashMismatch

_TIMEOUT = 120


@contextmanager
def package_cache_lock(pkgs_dir: Path, *, shared: bool) -> Iterator[None]:
    """Builds hold the cache shared while they fetch and link; pruning holds it exclusive,
    so nothing a build is about to link disappears under it."""
    pkgs_dir.mkdir(parents=True, exist_ok=True)
    with (pkgs_dir / ".envyard-cache-lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _verified(path: Path, sha256: str) -> bool:
    try:
        st = path.stat()
        mark = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return mark == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _copy_from(url: str, dest: Path) -> None:
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        src = Path(unquote(parsed.path))
        if not src.is_file():
            raise FetchError(f"{url}: no such file")
        shutil.copyfile(src, dest)
        return
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"{url}: unsupported URL scheme '{parsed.scheme}'")
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except OSError as exc:
        raise FetchError(f"{url}: download failed: {exc}") from exc


def fetch(url: str, sha256: str | None, pkgs_dir: Path, *, filename: str | None = None) -> Path:
    """Return the verified local copy of ``url`` in ``pkgs_dir``, fetching it if needed."""
    if not sha256:
        raise HashMismatch(f"{url}: the lock records no sha256; envyard installs only "
                           "packages it can verify")
    name = filename or unquote(urlparse(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name:
        raise FetchError(f"{url}: no usable file name")
    pkgs_dir.mkdir(parents=True, exist_ok=True)
    target = pkgs_dir / name
    if _verified(target, sha256):
        return target
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=pkgs_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_from(url, tmp)
        got = sha256_file(tmp)
        if got != sha256:
            raise HashMismatch(f"{name}: sha256 mismatch: the lock says {sha256}, "
                               f"the file from {url} has {got}; refusing to install it")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    _sidecar(target).write_text(json.dumps({"sha256": sha256, "size": st.st_size,
                                            "mtime_ns": st.st_mtime_ns}))
    return target
