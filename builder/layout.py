"""The shared volume's paths, in one place, and the atomic pointer swap on it.

```
<root>/pkgs/                          package cache (hardlink source of every prefix)
<root>/cache/                         repodata cache
<root>/prefixes/<fingerprint>/        one prefix per distinct lock + platform
<root>/packs/<fingerprint>.tar.zst    its conda-pack archive
<root>/envs/<ns>/<name>/<N>           -> ../../../prefixes/<fingerprint>
<root>/envs/<ns>/<name>/current       -> <N>
<root>/builds/<ns>/<name>/<N>/        spec, lock and log of version N
<root>/jupyter/<ns>/kernels/<ns>-<name>/kernel.json   the current version's kernel
<root>/images/                        OCI image layout: layers, configs, manifests
<root>/runners/<id>.lock              held by each live service process (see service.runners)
<dir>/.<name>.envyard-lock            serialises builds and GC of <dir>/<name> (prefix, pack)
<dir>/.<name>.envyard-<kind>-<id>     work in progress on <name>: staging, old, gc, part
```
The volume must be mounted at the same path wherever prefixes are used: conda bakes the
prefix path into files.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path


def envyard_home() -> Path:
    """This user's envyard directory (demo channel, wheelhouse, image store, refreshed
    name map): ``$ENVYARD_HOME``, else ``~/.envyard``."""
    return Path(os.environ.get("ENVYARD_HOME") or Path.home() / ".envyard")


def envyard_cache() -> Path:
    """Where a laptop's solves cache repodata when no cache is given: the XDG cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "envyard"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pkgs(self) -> Path:
        return self.root / "pkgs"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def prefix(self, fingerprint: str) -> Path:
        return self.root / "prefixes" / fingerprint

    def pack(self, fingerprint: str) -> Path:
        return self.root / "packs" / f"{fingerprint}.tar.zst"

    def env_dir(self, namespace: str, name: str) -> Path:
        return self.root / "envs" / namespace / name

    def version_link(self, namespace: str, name: str, number: int) -> Path:
        return self.env_dir(namespace, name) / str(number)

    def current_link(self, namespace: str, name: str) -> Path:
        return self.env_dir(namespace, name) / "current"

    @property
    def gc_lock(self) -> Path:
        """Held by the one garbage collection running on this volume (and its sweeps)."""
        return self.root / ".envyard-gc-lock"

    @property
    def images(self) -> Path:
        """The image blob store (an OCI image layout): layers reused across versions."""
        return self.root / "images"

    @property
    def jupyter(self) -> Path:
        """Jupyter data directories, one per namespace (``<ns>/kernels/...``)."""
        return self.root / "jupyter"

    def build_dir(self, namespace: str, name: str, number: int) -> Path:
        return self.root / "builds" / namespace / name / str(number)


#: Kinds of temporary siblings: a prefix being built, an old prefix being swapped out,
#: a tree GC renamed away before deleting it, an archive being written.
TEMP_KINDS = ("staging", "old", "gc", "part")


def guard_of(path: Path) -> Path:
    """The lock file that serialises whoever builds, replaces or deletes ``path``: the
    holder may also clear ``path``'s temporary siblings (a killed build's)."""
    return path.parent / f".{path.name}.envyard-lock"


def temp_beside(path: Path, kind: str) -> Path:
    """A new temporary sibling of ``path`` (``kind`` in ``TEMP_KINDS``), on the same
    file system so that one rename publishes it."""
    assert kind in TEMP_KINDS
    return path.with_name(f".{path.name}.envyard-{kind}-{uuid.uuid4().hex[:8]}")


def temps_of(path: Path, kind: str) -> list[Path]:
    return list(path.parent.glob(f".{glob_escape(path.name)}.envyard-{kind}-*"))


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def point(link: Path, target: Path | str) -> None:
    """Make ``link`` a symlink to ``target``, replacing any old one in a single rename."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}")
    os.symlink(target, tmp)
    os.replace(tmp, link)
