"""One platform of a lock as a self-contained archive, made without installing it.

A user on ``osx-arm64`` wants the environment their hub runs on ``linux-64``, version for
version. Installing it here is impossible (other binaries) and unnecessary: what they need
is the lock's packages for their platform, verified, and a way to link them offline. So,
as pixi-pack does, the pack is a plain tar (its packages are already compressed; macOS's
``tar`` reads it) of::

    envyard-pack.json            platform, and every package: file, name, version, build, sha256
    conda-lock.yml               the lock it was made from
    explicit.txt                 @EXPLICIT, in install order, relative paths and sha256
    channel/<subdir>/<file>      the platform's and noarch packages (a local channel) ...
    channel/<subdir>/repodata.json   ... indexed from the archives' own index.json
    wheels/<file>.whl            the lock's pip packages, if any
    unpack.sh, unpack.py         create the prefix: micromamba/mamba/conda, else py-rattler

Every package comes through ``fetch`` (its URL checked against the caller's ``Sources``,
its sha256 against the lock) and is hashed again as it is copied into the archive, and its
own ``index.json`` must be the package the lock names. Entries are sorted, owned by 0 and
dated 0, so one lock gives one archive byte for byte. The archive is written beside its
final name and renamed into place: a failure (a hash mismatch, a cancel) writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envyard.builder.errors import HashMismatch, LockError, PackError
from envyard.builder.fetch import Deadline, Sources, counted_fetcher, package_cache_lock
from envyard.builder.install import check_installable
from envyard.builder.layout import temp_beside
from envyard.builder.lock import DEFAULT_CATEGORIES, LockedPackage, Lockfile, dump_lock
from envyard.builder.lock_unpack import FORMAT, MANIFEST
from envyard.builder.render import dependency_order

logger = logging.getLogger("envyard")

DEFAULT_TIMEOUT = 1800.0
#: The largest ``info/index.json`` read from an archive (real ones are a few kB).
MAX_INDEX_JSON = 1 << 20

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LockPackResult:
    archive: Path
    platform: str
    conda_packages: int
    pip_packages: int
    bytes: int  # the archive's size
    package_bytes: int  # what the packages weigh (fetched, unless the cache had them)
    seconds: float


def _index_json(path: Path) -> dict[str, Any]:
    """The package's own record (``info/index.json``) read from a ``.conda`` or
    ``.tar.bz2`` archive, without extracting anything else."""
    try:
        if path.name.endswith(".conda"):
            import zstandard

            with zipfile.ZipFile(path) as zf:
                info = next((n for n in zf.namelist()
                             if n.startswith("info-") and n.endswith(".tar.zst")), None)
                if info is None:
                    raise PackError(f"{path.name}: no info-*.tar.zst in the package")
                with zf.open(info) as raw, \
                        zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                    return _from_tar(tarfile.open(fileobj=stream, mode="r|"), path)
        with tarfile.open(path, mode="r|bz2") as tar:
            return _from_tar(tar, path)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, ValueError) as exc:
        raise PackError(f"{path.name}: cannot read its info/index.json: {exc}") from exc


def _from_tar(tar: tarfile.TarFile, path: Path) -> dict[str, Any]:
    for member in tar:
        if member.name in ("info/index.json", "./info/index.json"):
            if not member.isfile() or member.size > MAX_INDEX_JSON:
                break
            f = tar.extractfile(member)
            assert f is not None
            data = json.loads(f.read())
            if isinstance(data, dict):
                return data
            break
    raise PackError(f"{path.name}: no usable info/index.json in the package")


def _checked_record(p: LockedPackage, path: Path, platform: str) -> dict[str, Any]:
    """The repodata record of a locked package: its archive's index.json (dependencies
    with build strings, constraints, noarch) with the lock's hashes, after checking that
    the archive is the package the lock names, for this platform or noarch."""
    index = _index_json(path)
    actual = (str(index.get("name", "")), str(index.get("version", "")),
              str(index.get("build", "")))
    if (p.name.lower(), p.version, p.conda_build or actual[2]) != actual:
        raise LockError(f"{p.name[:100]} {p.version[:100]}: the lock names its package "
                        f"wrongly; {path.name} is {' '.join(actual)}")
    subdir = str(index.get("subdir") or "")
    if subdir not in (platform, "noarch"):
        raise LockError(f"{p.name}: the lock lists it for {platform}, but {path.name} is a "
                        f"{subdir or 'subdir-less'} package")
    return {**index, "subdir": subdir, "md5": p.hash.md5, "sha256": p.hash.sha256,
            "size": path.stat().st_size}


def _repodata(subdir: str, records: list[tuple[str, dict[str, Any]]]) -> bytes:
    data: dict[str, Any] = {"info": {"subdir": subdir}, "packages": {},
                            "packages.conda": {}, "removed": [], "repodata_version": 1}
    for filename, record in sorted(records):
        if record["subdir"] == subdir:
            data["packages.conda" if filename.endswith(".conda") else "packages"][
                filename] = record
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"


def _explicit(platform: str, conda: list[tuple[LockedPackage, str]]) -> bytes:
    """``@EXPLICIT`` in conda-lock's install order, each line a path in this pack with
    the package's sha256 (read by conda >= 24.9 and mamba); unpack.sh makes the paths
    file:// URLs of where the pack was unpacked."""
    by_name = {p.name: (p, subdir) for p, subdir in conda}
    order = dependency_order({p.name: set(p.dependencies) for p, _ in conda})
    lines = ["# An envyard pack: paths are relative to this file (unpack.sh rewrites them).",
             f"# platform: {platform}", "@EXPLICIT"]
    for name in order:
        if name in by_name:
            p, subdir = by_name[name]
            lines.append(f"channel/{subdir}/{p.filename}#{p.hash.sha256}")
    return ("\n".join(lines) + "\n").encode()


_UNPACK_SH = """\
#!/bin/sh
# Create this pack's {platform} environment at PREFIX, offline:  sh unpack.sh PREFIX
# With micromamba, mamba or conda on PATH (or ENVYARD_UNPACK_WITH=<that tool>), the tool
# creates it from explicit.txt; otherwise unpack.py does, with py-rattler ($PYTHON, default
# python3; pip install py-rattler). No package's link script is run by unpack.py.
set -eu
if [ "$#" -ne 1 ]; then echo "usage: sh unpack.sh PREFIX" >&2; exit 2; fi
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
prefix=$1
if [ -e "$prefix" ] && [ -n "$(ls -A -- "$prefix" 2>/dev/null)" ]; then
  echo "error: $prefix exists and is not empty; choose a new directory" >&2; exit 1
fi
tool=${{ENVYARD_UNPACK_WITH-}}
if [ -z "$tool" ]; then
  for t in micromamba mamba conda; do
    if command -v "$t" >/dev/null 2>&1; then tool=$t; break; fi
  done
fi
case "$tool" in
  ""|python)
    "${{PYTHON:-python3}}" "$here/unpack.py" "$prefix" ;;
  *)
    explicit=$(mktemp "${{TMPDIR:-/tmp}}/envyard-explicit.XXXXXX")
    trap 'rm -f "$explicit"' EXIT
    url=$(printf '%s' "$here" | sed -e 's/%/%25/g' -e 's/ /%20/g' -e 's/#/%23/g' \\
      -e 's/[&|\\\\]/\\\\&/g')
    sed -e "s|^channel/|file://$url/channel/|" "$here/explicit.txt" > "$explicit"
    CONDA_SUBDIR={platform} "$tool" create --yes --offline --prefix "$prefix" \\
      --file "$explicit" ;;
esac
if ls "$here"/wheels/*.whl >/dev/null 2>&1; then
  "$prefix/bin/python" -m pip install --no-deps --no-index --no-warn-script-location \\
    "$here"/wheels/*.whl
fi
echo "created $prefix"
"""


class _TarOut:
    """Entries with fixed owners and times (reproducible), files copied in and hashed."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.dirs: set[str] = set()

    def _info(self, name: str, size: int, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, mode, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                info = self._info(d, 0, 0o755)
                info.type = tarfile.DIRTYPE
                self.tar.addfile(info)

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(name)
        self.tar.addfile(self._info(name, len(data), mode), io.BytesIO(data))

    def add_file(self, name: str, path: Path, sha256: str, package: str) -> int:
        """Copy ``path`` in, hashing what is copied: the cache is shared, so the bytes
        must still be the verified ones."""
        self._parents(name)
        digest = hashlib.sha256()
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size

            class Hashing:
                """What tarfile copies from (it only calls ``read``), hashed on the way."""

                def read(self, n: int = -1) -> bytes:
                    chunk = f.read(n)
                    digest.update(chunk)
                    return chunk

            self.tar.addfile(self._info(name, size, 0o644), Hashing())
        if digest.hexdigest() != sha256:
            raise HashMismatch(f"{package}: {path.name} changed in the package cache after "
                               "it was verified")
        return size


def pack_lock(lock: Lockfile, platform: str, output: Path, *, pkgs_dir: Path,
              sources: Sources | None = None,
              categories: Sequence[str] = DEFAULT_CATEGORIES,
              timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None,
              stop: Callable[[], bool] | None = None,
              lock_text: str | None = None) -> LockPackResult:
    """Write ``output`` (a ``.tar``): the ``platform`` part of ``lock`` (its packages of
    ``categories``) with an unpack script, fetched into ``pkgs_dir`` through ``fetch``
    with ``sources``. ``lock_text``: the lock as stored (else it is written anew).
    ``timeout`` bounds fetching and writing; ``stop()`` ends them early (``Stopped``)."""
    start = time.perf_counter()
    if not output.name.endswith(".tar"):
        raise PackError(f"{output.name}: a platform pack is a .tar (its packages are "
                        "compressed already)")
    deadline = Deadline(time.monotonic() + timeout, stop)
    check_installable(lock, platform, sources, categories)  # platform, hashes, URLs
    conda = [p for p in lock.selected(platform, "conda", categories=categories)
             if not p.name.startswith("__")]
    pip = lock.selected(platform, "pip", categories=categories)
    fetched = counted_fetcher(pkgs_dir, sources, deadline, len(conda) + len(pip), progress)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(output, "part")
    try:
        with package_cache_lock(pkgs_dir, shared=True):
            with ThreadPoolExecutor(max_workers=8) as pool:
                conda_files = list(pool.map(fetched, conda))
                wheel_files = list(pool.map(fetched, pip))
            records = [_checked_record(p, f, platform)
                       for p, f in zip(conda, conda_files, strict=True)]
            package_bytes = _write(tmp, lock, platform, conda, conda_files, records, pip,
                                   wheel_files, lock_text, deadline, progress)
        os.replace(tmp, output)
    except OSError as exc:
        raise PackError(f"could not write {output}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    result = LockPackResult(output, platform, len(conda), len(pip), output.stat().st_size,
                            package_bytes, time.perf_counter() - start)
    logger.info("packed %s for %s from its lock: %d conda + %d pip packages, %d bytes in "
                "%.1f s", output.name, platform, result.conda_packages, result.pip_packages,
                result.bytes, result.seconds)
    return result


def _write(tmp: Path, lock: Lockfile, platform: str, conda: list[LockedPackage],
           conda_files: list[Path], records: list[dict[str, Any]], pip: list[LockedPackage],
           wheel_files: list[Path], lock_text: str | None, deadline: Deadline,
           progress: Progress | None) -> int:
    subdirs = [(p, str(r["subdir"])) for p, r in zip(conda, records, strict=True)]
    manifest = {
        "format": FORMAT, "platform": platform,
        "packages": sorted(({"name": p.name, "version": p.version, "build": r["build"],
                             "subdir": s, "file": p.filename, "sha256": p.hash.sha256}
                            for (p, s), r in zip(subdirs, records, strict=True)),
                           key=lambda e: (e["name"], e["file"])),
        "wheels": sorted(({"name": p.name, "version": p.version, "file": p.filename,
                           "sha256": p.hash.sha256} for p in pip),
                         key=lambda e: (e["name"], e["file"])),
    }
    named = [(f"channel/{s}/{p.filename}", f, p) for (p, s), f in
             zip(subdirs, conda_files, strict=True)]
    named += [(f"wheels/{p.filename}", f, p) for p, f in zip(pip, wheel_files, strict=True)]
    named.sort(key=lambda e: e[0])
    if len({n for n, _, _ in named}) != len(named):
        raise LockError(f"two packages of {platform} have the same file name")
    by_file = [(r["subdir"], p.filename, r) for p, r in zip(conda, records, strict=True)]
    with tmp.open("wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            package_bytes = _entries(_TarOut(tar), lock, platform, manifest, subdirs, by_file,
                                     named, lock_text, deadline, progress)
        os.fsync(f.fileno())
    return package_bytes


def _entries(out: _TarOut, lock: Lockfile, platform: str, manifest: dict[str, Any],
             subdirs: list[tuple[LockedPackage, str]],
             by_file: list[tuple[str, str, dict[str, Any]]],
             named: list[tuple[str, Path, LockedPackage]], lock_text: str | None,
             deadline: Deadline, progress: Progress | None) -> int:
    """Metadata first (a reader sees what the pack is before its megabytes), then the
    packages, in name order."""
    package_bytes = 0
    out.add_bytes(MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n")
    out.add_bytes("conda-lock.yml", (lock_text if lock_text is not None
                                     else dump_lock(lock)).encode())
    out.add_bytes("explicit.txt", _explicit(platform, subdirs))
    out.add_bytes("unpack.sh", _UNPACK_SH.format(platform=platform).encode(), 0o755)
    out.add_bytes("unpack.py", Path(__file__).with_name("lock_unpack.py").read_bytes())
    for subdir in sorted({"noarch", platform}):
        out.add_bytes(f"channel/{subdir}/repodata.json", _repodata(
            subdir, [(name, r) for s, name, r in by_file if s == subdir]))
    for i, (name, path, p) in enumerate(named, 1):
        deadline.check(p.name)
        package_bytes += out.add_file(name, path, p.hash.sha256 or "", p.name)
        if progress:
            progress("write", i, len(named))
    return package_bytes


def cli_unpack(argv: Sequence[str]) -> int:
    """``python3 -m envyard.builder.lock_pack unpack PACK_DIR PREFIX``: the same as the
    pack's own unpack.py."""
    from envyard.builder import lock_unpack

    return lock_unpack.main(list(argv))


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["unpack"]:
        sys.stderr.write("usage: python3 -m envyard.builder.lock_pack unpack PACK_DIR PREFIX\n")
        os._exit(2)
    code = cli_unpack(sys.argv[2:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
