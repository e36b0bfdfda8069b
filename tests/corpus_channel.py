"""A repodata-only channel rebuilt from the real conda-forge locks in ``../shared/corpus``.

Each locked package becomes one record (one per URL) with its name, version, build, hashes
and dependencies, in the subdir its URL names, so real conda-forge specs solve offline
against conda-forge's own metadata: ``_openmp_mutex``, ``python_abi``, ``__glibc``
dependencies, noarch packages and several platforms included. What a lock does not record
is missing: build-string constraints in dependencies, ``constrains``, sizes and timestamps;
the packages' files are not here either, so this channel locks but does not install.
"""

from __future__ import annotations

import json
from pathlib import Path

from envyard.builder.lock import read_lock

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
VERSION = "1"  # bump when the records change, so written channels are rebuilt


def _build_number(build: str) -> int:
    tail = build.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def corpus_channel(out: Path, locks: list[Path] | None = None) -> Path:
    """Write the channel under ``out`` (once: a written channel is reused); return it."""
    done = out / ".complete"
    if done.exists() and done.read_text() == VERSION:
        return out
    subdirs: dict[str, dict[str, dict[str, object]]] = {}
    for path in locks or sorted(CORPUS.rglob("conda-lock.yml")):
        for p in read_lock(path).package:
            if p.manager != "conda":
                continue
            subdir, fn = p.url.split("/")[-2:]
            stem = fn.removesuffix(".conda").removesuffix(".tar.bz2")
            build = stem.rsplit("-", 1)[1]
            depends = [f"{name} {spec}".strip() for name, spec in p.dependencies.items()]
            record: dict[str, object] = {
                "name": p.name, "version": p.version, "build": build,
                "build_number": _build_number(build), "depends": depends, "subdir": subdir,
                "md5": p.hash.md5, "sha256": p.hash.sha256}
            if subdir == "noarch":
                record["noarch"] = "python" if "python" in p.dependencies else "generic"
            key = "packages.conda" if fn.endswith(".conda") else "packages"
            subdirs.setdefault(subdir, {"packages": {}, "packages.conda": {}})[key] \
                .setdefault(fn, record)
    for subdir, packages in {"noarch": {"packages": {}, "packages.conda": {}},
                             **subdirs}.items():
        (out / subdir).mkdir(parents=True, exist_ok=True)
        body = {"info": {"subdir": subdir}, **packages, "repodata_version": 1}
        tmp = out / subdir / "repodata.json.part"
        tmp.write_text(json.dumps(body, separators=(",", ":")))
        tmp.replace(out / subdir / "repodata.json")
    done.write_text(VERSION)
    return out
