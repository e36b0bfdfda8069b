"""An environment as image layers grouped by package: reproducible and reusable.

Each package goes to bucket ``sha256(name) % max_layers``, so a package keeps its layer
from one version to the next and a version that changes one package changes one layer
(plus the small layer of files no package owns: history, pip installs, envyard's stamp).
conda-pack's ``Packer`` decides each file's bytes with paths rewritten to ``dest_prefix``;
the tar is ours: sorted entries, owner 0, gzip without a timestamp, and mtimes that do not
depend on when the prefix was built: a file keeps the mtime its package archive gave it
(so ``.pyc`` files stay valid) unless it was written at install time (entry points, files
with a prefix rewritten), which gets a fixed one. One lock gives byte-identical layers. A
layer whose packages (by archive sha256) and destination were built before is reused from
the store without being written again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isal import igzip  # ISA-L deflate: gzip bytes, ~4x zlib's speed at level 1

from envyard.builder.errors import ImageError
from envyard.builder.oci import OCI_LAYER_GZIP, BlobStore, Descriptor

LAYER_FORMAT = "envyard-layer-4"
FIXED_MTIME = 315532800  # 1980-01-01, the zip epoch
FRESH = 86400  # files this close to the build time were written by the install
OWNERLESS = "~unowned"


@dataclass(frozen=True)
class Layer:
    descriptor: Descriptor
    diff_id: str
    packages: tuple[str, ...]


def bucket_of(name: str, buckets: int) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % buckets


def package_owners(prefix: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(file -> package name, package name -> archive sha256) from ``conda-meta``."""
    owner: dict[str, str] = {}
    sha: dict[str, str] = {}
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        record = json.loads(meta.read_text())
        name = record["name"]
        sha[name] = record.get("sha256") or record.get("md5") or ""
        owner[f"conda-meta/{meta.name}"] = name
        for f in record.get("files", ()):
            owner[f] = name
    return owner, sha


class _Digesting(io.RawIOBase):
    """Forward writes, hashing them on the way (and counting bytes)."""

    def __init__(self, target: Any) -> None:
        self.target, self.hash, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


class _LayerArchive:
    """conda-pack's archive interface over one reproducible tar.

    Two repairs on top of conda-pack's rewriting, both so the layer names ``dest`` only:
    scripts conda-pack passes through untouched (entry points rattler wrote, which carry
    no prefix placeholder) get their ``#!`` line pointed at ``dest``; conda-meta drops the
    per-path ``sha256_in_prefix``/``size_in_prefix``, which describe the build path.
    """

    def __init__(self, tar: tarfile.TarFile, arcroot: str, built: int, prefix: str,
                 dest: str) -> None:
        self.tar, self.arcroot, self.floor = tar, arcroot, built - FRESH
        self.prefix, self.dest = prefix.encode(), dest.encode()

    def _info(self, source: str, target: str) -> tuple[tarfile.TarInfo, os.stat_result]:
        st = os.lstat(source)
        info = tarfile.TarInfo(f"{self.arcroot}/{target}")
        info.uid, info.gid, info.uname, info.gname = 0, 0, "", ""
        info.mtime = int(st.st_mtime) if st.st_mtime < self.floor else FIXED_MTIME
        info.mode = stat.S_IMODE(st.st_mode)
        return info, st

    def add(self, source: str, target: str) -> None:
        info, st = self._info(source, target)
        if stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(source)
            self.tar.addfile(info)
        elif stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
        else:
            with open(source, "rb") as f:
                if st.st_size < (1 << 20) and f.read(2) == b"#!":
                    f.seek(0)
                    head, _, rest = f.read().partition(b"\n")
                    data = head.replace(self.prefix, self.dest) + b"\n" + rest
                    info.size = len(data)
                    self.tar.addfile(info, io.BytesIO(data))
                    return
                f.seek(0)
                info.size = st.st_size
                self.tar.addfile(info, f)

    def add_bytes(self, source: str, data: bytes, target: str) -> None:
        info, _ = self._info(source, target)
        if target.startswith("conda-meta/") and target.endswith(".json"):
            record = json.loads(data)
            for entry in (record.get("paths_data") or {}).get("paths", ()):
                entry.pop("sha256_in_prefix", None)
                entry.pop("size_in_prefix", None)
                if entry.get("prefix_placeholder") or "entry_point" in entry.get(
                        "path_type", ""):  # rattler describes the file as installed
                    entry.pop("size_in_bytes", None)
                    if "entry_point" in entry.get("path_type", ""):
                        entry.pop("sha256", None)
            data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def directory(self, path: str) -> None:
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
        self.tar.addfile(info)


def _parents(dest: str, targets: list[str]) -> list[str]:
    """Every directory above the layer's entries, ``dest`` and its own parents included."""
    dirs: set[str] = set()
    for path in [dest, *(f"{dest}/{t}" for t in targets)]:
        path = os.path.dirname(path)
        while path not in ("/", "") and path not in dirs:
            dirs.add(path)
            path = os.path.dirname(path)
    dirs.add(dest)
    return sorted(d.lstrip("/") for d in dirs)


def _write_layer(store: BlobStore, prefix: Path, dest: str, files: list[Any], built: int,
                 level: int) -> tuple[Descriptor, str]:
    from conda_pack.core import Packer

    tmp = store.temp()
    try:
        with tmp.open("wb") as raw:
            compressed = _Digesting(raw)
            with igzip.IGzipFile(  # type: ignore[no-untyped-call]  # isal leaves it unannotated
                    filename="", mode="wb", fileobj=compressed, compresslevel=level,
                    mtime=0) as gz:
                plain = _Digesting(gz)
                buffered = io.BufferedWriter(plain, buffer_size=1 << 20)
                with tarfile.open(fileobj=buffered, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    archive = _LayerArchive(tar, dest.lstrip("/"), built, str(prefix), dest)
                    for d in _parents(dest.rstrip("/"), [f.target for f in files]):
                        archive.directory(d)
                    packer = Packer(str(prefix), archive, dest)
                    for f in files:
                        packer.add(f)
                buffered.flush()
        digest = "sha256:" + compressed.hash.hexdigest()
        store.commit(tmp, digest)
    finally:
        tmp.unlink(missing_ok=True)
    return (Descriptor(OCI_LAYER_GZIP, digest, compressed.size),
            "sha256:" + plain.hash.hexdigest())


def env_layers(prefix: Path, dest: str, store: BlobStore, *, max_layers: int = 64,
               built: int = 0, level: int = 1, threads: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[Layer]:
    """The layers of ``prefix`` installed at ``dest``, in a stable order, written to
    ``store`` (or found there); ``built`` is when the prefix was installed (epoch s)."""
    import conda_pack

    prefix = prefix.resolve()  # the path the files name, not a link to it
    if not 1 <= max_layers <= 120:
        raise ImageError(f"max_layers must be 1..120, not {max_layers}")
    try:
        env = conda_pack.CondaEnv.from_prefix(str(prefix))
    except conda_pack.CondaPackException as exc:
        raise ImageError(f"cannot read {prefix} as a conda environment: {exc}") from exc
    owner, sha = package_owners(prefix)
    groups: dict[str, list[Any]] = {}
    for f in env.files:
        name = owner.get(f.target)
        key = f"{bucket_of(name, max_layers):03d}" if name else OWNERLESS
        groups.setdefault(key, []).append(f)
    keys_dir = store.root / "layer-keys"
    keys_dir.mkdir(exist_ok=True)

    def build(key: str) -> Layer:
        files = sorted(groups[key], key=lambda f: f.target)
        packages = tuple(sorted({owner[f.target] for f in files if f.target in owner}))
        cache_key = None
        if key != OWNERLESS:  # a package's files depend only on its archive and dest
            cache_key = hashlib.sha256(json.dumps(
                [LAYER_FORMAT, dest, level, [(p, sha[p]) for p in packages]]
            ).encode()).hexdigest()
            known = keys_dir / cache_key
            if known.exists():
                cached = json.loads(known.read_text())
                desc = Descriptor.from_json(cached["descriptor"])
                if store.has(desc.digest):
                    return Layer(desc, cached["diff_id"], packages)
        desc, diff_id = _write_layer(store, prefix, dest, files, built, level)
        if cache_key:  # written whole or not at all: builds run side by side
            tmp = store.temp()
            tmp.write_text(json.dumps({"descriptor": desc.to_json(), "diff_id": diff_id}))
            os.replace(tmp, keys_dir / cache_key)
        return Layer(desc, diff_id, packages)

    ordered = sorted(groups)  # buckets by number, then the ownerless layer
    workers = threads or os.cpu_count() or 2
    layers: dict[str, Layer] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(build, ordered) if workers > 1 else map(build, ordered)
        for done, (key, layer) in enumerate(zip(ordered, results, strict=True), 1):
            layers[key] = layer
            if progress:
                progress(done, len(ordered))
    return [layers[k] for k in ordered]
