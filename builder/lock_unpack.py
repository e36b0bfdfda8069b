"""Unpack an envyard platform pack into a prefix with py-rattler, offline.

This file is copied into every pack as ``unpack.py`` and must stay self-contained: the
standard library and py-rattler only, no envyard, so a laptop without conda and without
envyard unpacks with ``pip install py-rattler`` (``unpack.sh`` prefers micromamba, mamba or
conda when one is on PATH). Every package is hashed against the pack's manifest before it
is linked, the archive's own record must be the name, version and build the manifest
names, and nothing is executed from the packages (no link scripts). The prefix is built
beside its final path and renamed into place, so a failed unpack leaves nothing behind.

    python3 -m envyard.builder.lock_unpack PACK_DIR PREFIX
    python3 PACK_DIR/unpack.py PREFIX
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger("envyard")

MANIFEST = "envyard-pack.json"
FORMAT = 1


class UnpackError(Exception):
    """The pack is incomplete, altered, or the prefix cannot be made."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    """The pack's manifest, refused if it is not one this unpacker reads."""
    try:
        manifest: dict[str, Any] = json.loads((pack_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise UnpackError(f"{pack_dir} is not an unpacked envyard pack ({MANIFEST}: "
                          f"{exc})") from None
    if manifest.get("format") != FORMAT:
        raise UnpackError(f"{MANIFEST}: format {manifest.get('format')!r}; this unpacker "
                          f"reads format {FORMAT}")
    return manifest


def checked_files(pack_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    """Every conda package the manifest lists, each hashed against it (a truncated or
    altered download of the pack stops here, before anything is linked)."""
    files = []
    for p in manifest["packages"]:
        path = pack_dir / "channel" / p["subdir"] / p["file"]
        if os.sep in p["file"] or p["subdir"] not in (manifest["platform"], "noarch"):
            raise UnpackError(f"{MANIFEST}: {p['name']}: not a file of this pack's channel")
        if not path.is_file():
            raise UnpackError(f"{p['name']}: {path.name} is missing from the pack")
        if _sha256(path) != p["sha256"]:
            raise UnpackError(f"{p['name']}: {path.name} does not match its sha256")
        files.append(path)
    return files


async def _install(files: list[Path], manifest: dict[str, Any], staging: Path,
                   final: Path, cache: Path) -> None:
    import rattler

    records = await asyncio.gather(*map(rattler.RepoDataRecord.from_package_archive, files))
    # (no strict=: this file runs on the user's Python, which may be older than 3.10)
    for record, p in zip(records, manifest["packages"]):  # noqa: B905
        actual = (record.name.normalized, str(record.version), str(record.build))
        if actual != (p["name"].lower(), p["version"], p["build"]):
            raise UnpackError(f"{p['name']}: the archive is {' '.join(actual)}, not the "
                              "package the manifest names")
    await rattler.install(records, target_prefix=staging, cache_dir=cache,
                          platform=rattler.Subdir(manifest["platform"]),
                          alternative_target_prefix=final, execute_link_scripts=False,
                          show_progress=False)


def unpack(pack_dir: Path, prefix: Path) -> int:
    """Create ``prefix`` from the unpacked pack in ``pack_dir``; the number of packages."""
    pack_dir, prefix = pack_dir.absolute(), prefix.absolute()
    manifest = read_manifest(pack_dir)
    if prefix.exists() and (not prefix.is_dir() or any(prefix.iterdir())):
        raise UnpackError(f"{prefix} exists and is not empty; choose a new directory")
    files = checked_files(pack_dir, manifest)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.unpacking-", dir=prefix.parent))
    cache = Path(tempfile.mkdtemp(prefix=".envyard-unpack-cache-", dir=prefix.parent))
    try:
        asyncio.run(_install(files, manifest, staging, prefix, cache))
        if prefix.exists():
            prefix.rmdir()  # empty, checked above
        staging.rename(prefix)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, UnpackError):
            raise
        raise UnpackError(f"could not create {prefix}: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return len(files)


def main(argv: list[str]) -> int:
    """``[PACK_DIR] PREFIX`` (the pack's own directory when run as its unpack.py)."""
    if len(argv) == 1:
        pack_dir, prefix = Path(__file__).resolve().parent, Path(argv[0])
    elif len(argv) == 2:
        pack_dir, prefix = Path(argv[0]), Path(argv[1])
    else:
        sys.stderr.write("usage: unpack.py PREFIX  |  python3 -m envyard.builder.lock_unpack "
                         "PACK_DIR PREFIX\n")
        return 2
    try:
        import rattler  # noqa: F401
    except ImportError:
        sys.stderr.write("unpacking needs micromamba, mamba or conda on PATH, or py-rattler "
                         "(pip install py-rattler)\n")
        return 3
    try:
        n = unpack(pack_dir, prefix)
    except UnpackError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"{prefix}: {n} packages\n")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # rattler's native threads may crash a normal interpreter exit
