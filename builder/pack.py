"""Prefix -> conda-pack archive: ``.tar.zst`` by default, compressed beside the packing.

conda-pack builds the archive (its ``Packer`` decides every file's path, prefix rewrite and
the ``conda-unpack`` script, so the result is exactly a conda-pack archive). Its own
``pack()`` compresses on the same thread that walks the files; here the tar stream goes
through a pipe to a zstd stage on other cores, so walking and compressing overlap.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.errors import PackError
from builder.layout import temp_beside

FORMATS = {".tar.zst": "tar.zst", ".tzst": "tar.zst", ".tar.gz": "tar.gz", ".tgz": "tar.gz",
           ".tar.bz2": "tar.bz2", ".zip": "zip", ".tar": "tar"}
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

    history = Path(env.prefix) / "conda-meta" / "history"  # type: ignore[attr-defined]
    mtime = history.lstat().st_mtime if history.exists() else None
    with archive(fileobj, "", "", fmt, compress_level=level, n_threads=threads,
                 mtime=mtime) as arc:
        packer = Packer(env.prefix, arc, dest_prefix)  # type: ignore[attr-defined]
        files = env.files  # type: ignore[attr-defined]
        for i, f in enumerate(files, 1):
            packer.add(f)
            if progress and (i % 500 == 0 or i == len(files)):
                progress("pack", i, len(files))
        packer.finish()


class _Stream:
    """A write-only stream over a pipe that answers ``tell()``, which tarfile asks for."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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
            try:
                stream = _Stream(write_fd)
                try:
                    _pack_into(env, stream, "tar", 0, 1, dest_prefix, progress)
                finally:
                    stream.close()
            finally:
                thread.join()
            if errors:
                raise PackError(f"compressing {output.name} failed: {errors['error']}")
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
