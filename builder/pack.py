"""Prefix -> conda-pack archive: ``.tar.zst`` by default, compressed beside the packing.

conda-pack decides the archive (its ``Packer`` chooses every file's path, prefix rewrite and
the ``conda-unpack`` script, so the result is exactly a conda-pack archive). For tar
formats the writing is ours: the few members conda-pack rewrites (conda-meta records,
shebangs, its scripts) are written from Python, and the tens of thousands it stores as
they are go to GNU tar in one list, whose output follows in the same stream. Python's
``tarfile`` spent ~0.3 ms a member on headers; tar spends microseconds. The stream goes
through a pipe to a zstd stage on other cores, so writing and compressing overlap.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from envyard.builder.errors import PackError
from envyard.builder.layout import temp_beside

FORMATS = {".tar.zst": "tar.zst", ".tzst": "tar.zst", ".tar.gz": "tar.gz", ".tgz": "tar.gz",
           ".tar.bz2": "tar.bz2", ".zip": "zip", ".tar": "tar"}
logger = logging.getLogger("envyard")
Progress = Callable[[str, int, int], None]
DEFAULT_LEVEL = {"tar.zst": 3, "tar.gz": 4, "tar.bz2": 4, "zip": 4, "tar": 0}


@dataclass(frozen=True)
class PackResult:
    archive: Path
    format: str
    bytes: int
    seconds: float


def archive_format(path: Path) -> str:
    for suffix, fmt in FORMATS.items():
        if path.name.endswith(suffix):
            return fmt
    raise PackError(f"{path.name}: unknown archive type; use one of {', '.join(FORMATS)}")


def _pack_into(env: object, fileobj: object, fmt: str, level: int, threads: int,
               dest_prefix: str | None, progress: Progress | None) -> None:
    from conda_pack.core import Packer
    from conda_pack.formats import archive

    with archive(fileobj, "", "", fmt, compress_level=level, n_threads=threads,
                 mtime=_mtime(env)) as arc:
        _add_all(Packer(env.prefix, arc, dest_prefix), env, progress)  # type: ignore[attr-defined]


def _mtime(env: object) -> float | None:
    """conda-pack stamps ``bin/conda-unpack`` with the environment's history's mtime."""
    history = Path(env.prefix) / "conda-meta" / "history"  # type: ignore[attr-defined]
    return history.lstat().st_mtime if history.exists() else None


def _add_all(packer: Any, env: object, progress: Progress | None) -> None:
    files = env.files  # type: ignore[attr-defined]
    for i, f in enumerate(files, 1):
        packer.add(f)
        if progress and (i % 500 == 0 or i == len(files)):
            progress("pack", i, len(files))
    packer.finish()


class _TarWriter:
    """conda-pack's archive interface (``add``, ``add_bytes``) writing a tar stream: a
    member conda-pack changes is written at once; one stored as it is in the prefix is
    listed, and ``finish`` has GNU tar append all those (and the end of the archive)."""

    def __init__(self, stream: BinaryIO, prefix: Path, mtime: float | None) -> None:
        self.stream, self.prefix, self.mtime = stream, prefix, mtime
        self.listed: list[str] = []
        self._headers = tarfile.TarFile(fileobj=io.BytesIO(), mode="w")  # for gettarinfo

    def add(self, source: str, target: str) -> None:
        if target != "bin/conda-unpack" and self._in_prefix(source, target):
            self.listed.append(target)
            return
        info = self._headers.gettarinfo(source, target)  # a temporary file: read it now
        if target == "bin/conda-unpack" and self.mtime is not None:
            info.mtime = self.mtime
        if info.isreg():
            with open(source, "rb") as f:
                self._write(info, f.read())
        else:
            self._write(info, b"")

    def _in_prefix(self, source: str, target: str) -> bool:
        """Whether tar may read ``target`` in the prefix for ``source``: the same path, or
        the same inode (conda-pack names an unchanged file by its package-cache copy,
        which the prefix holds as a hard link; a copy that differs is read from source)."""
        here = os.path.join(self.prefix, target)
        if here == source:
            return True
        try:
            a, b = os.lstat(source), os.lstat(here)
        except OSError:
            return False
        return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)

    def add_bytes(self, source: str, data: bytes, target: str) -> None:
        info = self._headers.gettarinfo(source, target)
        info.type, info.linkname = tarfile.REGTYPE, ""
        self._write(info, data)

    def _write(self, info: tarfile.TarInfo, data: bytes) -> None:
        info.size = len(data)
        self.stream.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
        if data:
            self.stream.write(data)
            self.stream.write(b"\0" * (-len(data) % tarfile.BLOCKSIZE))

    def finish(self, fd: int) -> None:
        """Append the listed members with GNU tar, writing straight into ``fd``."""
        self.stream.flush()
        names = b"".join(os.fsencode(n) + b"\0" for n in self.listed)
        done = subprocess.run(
            ["tar", "--create", "--file=-", "--format=gnu", "--no-recursion", "--null",
             "--verbatim-files-from", f"--directory={self.prefix}", "--files-from=-"],
            input=names, stdout=fd, stderr=subprocess.PIPE, check=False)
        said = done.stderr.decode(errors="replace").strip()
        if done.returncode == 1:  # GNU tar: a file changed as it was read; the rest is whole
            logger.warning("tar: %s", said)
        elif done.returncode != 0:
            how = f"signal {-done.returncode}" if done.returncode < 0 else \
                f"exit {done.returncode}"
            raise PackError(f"tar failed ({how}): {said}")


def _pack_tar(env: object, fd: int, dest_prefix: str | None,
              progress: Progress | None) -> None:
    """An uncompressed conda-pack tar of ``env`` written to ``fd``."""
    from conda_pack.core import Packer

    stream = os.fdopen(os.dup(fd), "wb", buffering=1 << 20)
    try:
        writer = _TarWriter(stream, Path(env.prefix), _mtime(env))  # type: ignore[attr-defined]
        _add_all(Packer(env.prefix, writer, dest_prefix), env, progress)  # type: ignore[attr-defined]
        writer.finish(fd)
    finally:
        stream.close()


def _zstd_pipe(out_path: Path, level: int, threads: int) -> tuple[int, threading.Thread,
                                                                 dict[str, BaseException]]:
    """A pipe whose read end a thread compresses into ``out_path``; returns the write fd."""
    import zstandard

    read_fd, write_fd = os.pipe()
    errors: dict[str, BaseException] = {}

    def run() -> None:
        try:
            cctx = zstandard.ZstdCompressor(level=level, threads=threads)
            with os.fdopen(read_fd, "rb") as src, out_path.open("wb") as dst:
                cctx.copy_stream(src, dst, read_size=1 << 20, write_size=1 << 20)
        except BaseException as exc:
            errors["error"] = exc

    thread = threading.Thread(target=run, name="envyard-zstd", daemon=True)
    thread.start()
    return write_fd, thread, errors


def pack_prefix(prefix: Path, output: Path, *, threads: int = -1, level: int | None = None,
                dest_prefix: str | None = None,
                progress: Progress | None = None) -> PackResult:
    """Pack ``prefix`` into ``output`` (format from its suffix); replace an old archive."""
    import conda_pack

    start = time.perf_counter()
    fmt = archive_format(output)
    level = DEFAULT_LEVEL[fmt] if level is None else level
    if not (prefix / "conda-meta").is_dir():
        raise PackError(f"{prefix} is not a conda environment (no conda-meta/)")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(output, "part")
    try:
        env = conda_pack.CondaEnv.from_prefix(str(prefix))
        if fmt == "tar.zst":
            write_fd, thread, errors = _zstd_pipe(tmp, level, threads)
            failed: BaseException | None = None
            try:
                _pack_tar(env, write_fd, dest_prefix, progress)
            except (PackError, OSError) as exc:
                failed = exc
            finally:
                os.close(write_fd)
                thread.join()
            if errors:  # a broken pipe or a killed tar is the compressor's failure: say so
                raise PackError(f"compressing {output.name} failed: {errors['error']}")
            if failed is not None:
                raise failed
        elif fmt == "tar":
            with tmp.open("wb") as f:
                _pack_tar(env, f.fileno(), dest_prefix, progress)
        else:
            with tmp.open("wb") as f:
                _pack_into(env, f, fmt, level, threads, dest_prefix, progress)
        os.replace(tmp, output)
    except conda_pack.CondaPackException as exc:
        raise PackError(f"conda-pack failed for {prefix}: {exc}") from exc
    except OSError as exc:
        raise PackError(f"could not write {output}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return PackResult(output, fmt, output.stat().st_size, time.perf_counter() - start)
