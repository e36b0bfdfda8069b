"""Bring a locked package into the shared package cache, verified against the lock's sha256.

A package enters ``pkgs/`` only after its bytes hash to what the lock says; a sidecar file
remembers the verification (size, mtime, sha256) so a warm cache is not re-hashed on every
build. The URL is hostile until checked, here, whoever calls: it is parsed part by part
(``builder.urls``), must lie under one of the ``Sources`` when they are given, and a local
file is opened only from the path rebuilt from its checked segments, after its real path
(symlinks resolved) is found under its channel and outside every forbidden root. Errors
name the package, never a local path or the hash of a file nobody asked for.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from envyard.builder.errors import FetchError, HashMismatch, Stopped, UnsafeURL
from envyard.builder.network import Network, Report
from envyard.builder.urls import URLParts, contained, parse_url

_TIMEOUT = 120
CACHE_LOCK = ".envyard-cache-lock"  # in pkgs/: builds hold it shared, pruning exclusive


@contextmanager
def package_cache_lock(pkgs_dir: Path, *, shared: bool) -> Iterator[None]:
    """Builds hold the cache shared while they fetch and link; pruning holds it exclusive,
    so nothing a build is about to link disappears under it."""
    pkgs_dir.mkdir(parents=True, exist_ok=True)
    with (pkgs_dir / CACHE_LOCK).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: What a package file in a channel or index is called: never hidden, never a path.
FILENAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(conda|tar\.bz2|whl)$")


@dataclass(frozen=True)
class Sources:
    """Where packages may come from (channel and index base URLs; none: any checked URL),
    local directories that are never read, whatever a URL says (the volume), how they are
    reached (mirrors, credentials) and who hears of a mirror that failed (a build's log)."""

    bases: tuple[URLParts, ...] = ()
    forbidden: tuple[Path, ...] = ()
    network: Network = field(default_factory=Network)
    report: Report | None = field(default=None, compare=False)

    @classmethod
    def of(cls, bases: Sequence[str], forbidden: Sequence[Path] = (),
           network: Network | None = None) -> Sources:
        """From channel URLs (or paths) and directories as settings name them."""
        return cls(tuple(parse_url(b, what="a channel URL") for b in bases),
                   tuple(Path(os.path.realpath(f)) for f in forbidden), network or Network())


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _mark(st: os.stat_result, sha256: str) -> dict[str, object]:
    """What a verification remembers: ctime too, which no one can set back, so a file
    rewritten in place with its size and mtime restored is hashed again."""
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def _verified(path: Path, sha256: str) -> bool:
    try:
        st = path.stat()
        mark = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return bool(mark == _mark(st, sha256))


def reverify(path: Path, sha256: str) -> bool:
    """Hash ``path`` again, whatever its sidecar says (after a failed extract or link)."""
    try:
        return sha256_file(path) == sha256
    except OSError:
        return False


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_url(url: str, package: str, sources: Sources | None) -> URLParts:
    """The checked URL of ``package``, or ``UnsafeURL``; for a local file also where it
    really is (symlinks resolved): under its channel and under no forbidden root. With
    ``sources``, the URL must lie under one of its bases (none: nothing is allowed);
    without, only its form is checked (a laptop building its own lock)."""
    what = f"{package}: its URL"
    parts = contained(url, list(sources.bases), what=what) if sources is not None \
        else parse_url(url, what=what)
    if not FILENAME_RE.fullmatch(parts.segments[-1] if parts.segments else ""):
        raise UnsafeURL(f"{what} does not end in a package file name (.conda, .tar.bz2, .whl)")
    if parts.scheme == "file":
        real = Path(os.path.realpath(parts.path))
        if sources is not None and not any(
                b.scheme == "file" and _under(real, Path(os.path.realpath(b.path)))
                for b in sources.bases):
            raise UnsafeURL(f"{what} leads out of its channel")
        if sources is not None and any(_under(real, root) for root in sources.forbidden):
            raise UnsafeURL(f"{what} points into the service's volume")
    return parts


@dataclass(frozen=True)
class Deadline:
    """When a fetch must have finished (``time.monotonic()``), and whether the caller has
    asked it to stop (a cancel): checked between chunks, so a server that trickles bytes
    cannot hold a build for ever."""

    at: float = float("inf")
    stop: Callable[[], bool] | None = None

    def left(self, step: str) -> float:
        """Seconds left for ``step``; raises ``Stopped`` if the caller asked to stop."""
        if self.stop is not None and self.stop():
            raise Stopped(f"{step}: stopped")
        return self.at - time.monotonic()

    def check(self, package: str) -> float:
        """Seconds left for a download; raises ``FetchError`` (too late) or ``Stopped``."""
        left = self.left(package)
        if left <= 0:
            raise FetchError(f"{package}: the download did not finish in time")
        return left


def _pump(read: Callable[[int], bytes], out: IO[bytes], package: str,
          deadline: Deadline) -> None:
    while True:
        deadline.check(package)
        chunk = read(1 << 20)
        if not chunk:
            return
        out.write(chunk)


def _copy_from(parts: URLParts, package: str, dest: Path, deadline: Deadline,
               sources: Sources) -> None:
    if parts.scheme == "file":
        try:  # non-blocking: a FIFO or a device must not hang the build
            fd = os.open(parts.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FetchError(f"{package}: not found in its channel") from None
        except OSError as exc:
            raise FetchError(f"{package}: cannot read it from its channel "
                             f"({exc.strerror})") from None
        with open(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FetchError(f"{package}: its URL does not name a package file")
            os.set_blocking(fd, True)
            with dest.open("wb") as out:
                _pump(src.read, out, package, deadline)
        return
    try:
        timeout = min(_TIMEOUT, deadline.check(package))
        with sources.network.open(str(parts), timeout, sources.report) as resp, \
                dest.open("wb") as out:
            _pump(resp.read1, out, package, deadline)  # read1: what one recv returns
    except OSError as exc:  # the network's error text is already redacted
        raise FetchError(f"{package}: download from {parts.host} failed: {exc}") from None


def counted_fetcher(pkgs_dir: Path, sources: Sources | None, deadline: Deadline, total: int,
                    progress: Callable[[str, int, int], None] | None
                    ) -> Callable[[Any], Path]:
    """``fetch`` of one locked package (``.url``, ``.hash.sha256``, ``.name``), counting
    each done out of ``total`` to ``progress`` (threads may share it: ``count()`` is
    atomic under the GIL)."""
    done = itertools.count(1)

    def fetched(p: Any) -> Path:
        path = fetch(p.url, p.hash.sha256, pkgs_dir, package=p.name, sources=sources,
                     deadline=deadline)
        if progress:
            progress("fetch", next(done), total)
        return path

    return fetched


def fetch(url: str, sha256: str | None, pkgs_dir: Path, *, package: str = "",
          sources: Sources | None = None, deadline: Deadline = Deadline()) -> Path:
    """Return the verified local copy of ``url`` in ``pkgs_dir``, fetching it if needed."""
    package = package or "a package"
    parts = check_url(url, package, sources)
    if not sha256:
        raise HashMismatch(f"{package}: the lock records no sha256; envyard installs only "
                           "packages it can verify")
    name = parts.segments[-1]
    pkgs_dir.mkdir(parents=True, exist_ok=True)
    target = pkgs_dir / name
    if _verified(target, sha256):
        return target
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=pkgs_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_from(parts, package, tmp, deadline, sources or Sources())
        if sha256_file(tmp) != sha256:
            raise HashMismatch(f"{package}: sha256 mismatch: the file at the lock's URL is "
                               "not the one the lock names; refusing to install it")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _sidecar(target).write_text(json.dumps(_mark(target.stat(), sha256)))
    return target
