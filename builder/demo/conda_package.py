"""Write a ``.conda`` archive: a zip holding two zstd tarballs, ``info-*`` and ``pkg-*``.

This is the conda package format v2 that rattler, conda and conda-pack read; writing it
ourselves keeps the fixture channel free of conda-build.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

#: Packages carry a fixed time, so a rebuilt channel has byte-identical packages and
#: existing locks (which pin sha256) stay valid.
FIXED_TIMESTAMP_MS = 1_700_000_000_000
_ZIP_DATE = (2023, 11, 14, 22, 13, 20)

#: The placeholder conda-build writes into text files; rattler replaces it with the prefix.
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"


@dataclass
class PackageFile:
    """One file of a package: its path inside the prefix and its bytes."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    symlink_to: str | None = None
    prefix_placeholder: str | None = None
    file_mode: str = "text"


@dataclass
class PackageSpec:
    """Everything needed to write one package archive."""

    name: str
    version: str
    build: str
    subdir: str
    depends: list[str]
    files: list[PackageFile]
    build_number: int = 0
    noarch: str | None = None
    entry_points: list[str] = field(default_factory=list)
    constrains: list[str] = field(default_factory=list)
    license: str = ""

    @property
    def dist_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"


def _index_json(spec: PackageSpec) -> dict[str, object]:
    index: dict[str, object] = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": spec.depends,
        "constrains": spec.constrains,
        "license": spec.license,
        "subdir": spec.subdir,
        "timestamp": FIXED_TIMESTAMP_MS,
    }
    if spec.noarch:
        index["noarch"] = spec.noarch
    else:
        index["platform"], index["arch"] = spec.subdir.split("-", 1)
    return index


def _paths_json(files: list[PackageFile]) -> dict[str, object]:
    paths: list[dict[str, object]] = []
    for f in files:
        if f.symlink_to is not None:
            paths.append({"_path": f.path, "path_type": "softlink"})
            continue
        entry: dict[str, object] = {
            "_path": f.path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(f.data).hexdigest(),
            "size_in_bytes": len(f.data),
        }
        if f.prefix_placeholder:
            entry["prefix_placeholder"] = f.prefix_placeholder
            entry["file_mode"] = f.file_mode
        paths.append(entry)
    return {"paths": paths, "paths_version": 1}


def _add(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _zstd_tar(members: list[PackageFile], level: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in members:
            if f.symlink_to is not None:
                info = tarfile.TarInfo(f.path)
                info.type = tarfile.SYMTYPE
                info.linkname = f.symlink_to
                tar.addfile(info)
            else:
                _add(tar, f.path, f.data, f.mode)
    return zstandard.ZstdCompressor(level=level).compress(raw.getvalue())


def write_conda(spec: PackageSpec, out_dir: Path, *, level: int = 3) -> Path:
    """Write ``<out_dir>/<name>-<version>-<build>.conda`` and return its path."""
    info_files = [
        PackageFile("info/index.json", json.dumps(_index_json(spec), indent=1).encode()),
        PackageFile("info/paths.json", json.dumps(_paths_json(spec.files), indent=1).encode()),
    ]
    if spec.noarch == "python":
        link = {"noarch": {"type": "python", "entry_points": spec.entry_points},
                "package_metadata_version": 1}
        info_files.append(PackageFile("info/link.json", json.dumps(link).encode()))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{spec.dist_name}.conda"
    tmp = target.with_suffix(".conda.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in (
                ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
                (f"pkg-{spec.dist_name}.tar.zst", _zstd_tar(spec.files, level)),
                (f"info-{spec.dist_name}.tar.zst", _zstd_tar(info_files, level))):
            zf.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), data)
    tmp.replace(target)
    return target
