"""The package cache's integrity: what a prefix hardlinks from is what the package holds.

Archives in ``pkgs/`` are verified against the lock's sha256 when they arrive
(``builder.fetch``); their sidecar remembers size, mtime *and ctime*, so an archive
rewritten in place, even with its size and mtime restored, is hashed and fetched again
(ctime cannot be set back by anyone but the kernel). Extracted packages in
``pkgs/extracted/<stem>/`` are what prefixes hardlink, and rattler reuses them without
looking inside: a file changed there would flow into every new prefix. So each extracted
package has a stamp of its files' (size, mtime, ctime), ``info/paths.json`` included,
taken once its content is known good; before linking, a stat of every file is compared
with it (a 12,000-file, 229 MB
environment: ~0.04 s, where hashing it all takes as long as the whole warm install), and
only a package whose stat changed is hashed against its ``info/paths.json``. A package
that does not match is removed, and rattler extracts it again from the verified archive.
Linking a file into a prefix changes its ctime too, so stamps are renewed after linking;
deleting a prefix does as well, so garbage collection re-checks the cache (``recheck``).
Files already hardlinked into existing prefixes share the changed bytes: that damage
happened when the file was written, and the way to avoid it is a volume users cannot
write (the chart mounts it read-only in user pods). Stamps catch a file changed through a
prefix it is linked into, or by anything that does not know them; whoever can write the
cache itself can also write a stamp, so the cache must be writable by envyard alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger("envyard")

_STAMP = ".{}.envyard-stamp"


def extracted_dir(archive: Path) -> Path:
    """Where rattler extracts ``archive`` (its cache directory ``pkgs/extracted``)."""
    stem = archive.name
    for ext in (".conda", ".tar.bz2"):
        stem = stem.removesuffix(ext)
    return archive.parent / "extracted" / stem


def _stamp_path(package: Path) -> Path:
    return package.parent / _STAMP.format(package.name)


def _entries(package: Path) -> list[tuple[str, str]]:
    """(relative path, sha256) of every regular file ``info/paths.json`` declares."""
    data = json.loads((package / "info" / "paths.json").read_text())
    return [(e["_path"], e["sha256"]) for e in data.get("paths", [])
            if e.get("sha256") and e.get("path_type", "hardlink") == "hardlink"]


def _stats(package: Path, paths: list[str]) -> dict[str, list[int]]:
    """(size, mtime, ctime) of ``paths`` in ``package`` (os.path, not pathlib: this runs
    over every file of an environment before every build)."""
    base, lstat, out = f"{package}/", os.lstat, {}
    for rel in paths:
        st = lstat(base + rel)
        out[rel] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return out


def _known_good(package: Path) -> bool:
    """The fast path: every file the stamp lists (``info/paths.json`` among them) has
    the size, mtime and ctime it had when the package was last known good."""
    try:
        stamp = json.loads(_stamp_path(package).read_text())
        return isinstance(stamp, dict) and "info/paths.json" in stamp and \
            _stats(package, list(stamp)) == stamp
    except (OSError, ValueError):
        return False


def _stamped_paths(package: Path) -> list[str]:
    return ["info/paths.json", *(rel for rel, _ in _entries(package))]


def _content_ok(package: Path, entries: list[tuple[str, str]]) -> bool:
    for rel, sha256 in entries:
        with (package / rel).open("rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != sha256:
                logger.warning("package cache: %s in %s does not match its paths.json; "
                               "extracting the package again", rel, package.name)
                return False
    return True


def _check_one(package: Path) -> bool:
    """True when ``package`` is untouched since its stamp, or its content is verified
    (then it is stamped anew); False when it must be extracted again."""
    if _known_good(package):
        return True
    try:
        entries = _entries(package)
        if not _content_ok(package, entries):
            return False
        _write_stamp(package, _stats(package, _stamped_paths(package)))
    except (OSError, ValueError, KeyError):
        return False  # unreadable or incomplete: extract again
    return True


def _write_stamp(package: Path, stats: dict[str, list[int]]) -> None:
    tmp = _stamp_path(package).with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, _stamp_path(package))


def check_extracted(archives: list[Path]) -> list[str]:
    """Before linking: remove every stamped package (of ``archives``) whose files changed
    since it was known good, so rattler extracts it again. Returns their names. One with
    no stamp yet is left to rattler (another build may be extracting it right now) and
    verified after the link (``restamp``)."""
    packages = [p for p in map(extracted_dir, archives)
                if p.is_dir() and _stamp_path(p).exists()]
    good = [_check_one(p) for p in packages]  # threads are slower: the loop is Python
    removed = []
    for package, ok in zip(packages, good, strict=True):
        if not ok:
            shutil.rmtree(package, ignore_errors=True)
            _stamp_path(package).unlink(missing_ok=True)
            removed.append(package.name)
    return removed


def stamp_owner(name: str) -> str | None:
    """The package an entry of ``pkgs/extracted`` named ``name`` stamps, if it is a stamp."""
    if name.startswith(".") and name.endswith(".envyard-stamp"):
        return name[1:].removesuffix(".envyard-stamp")
    return None


def recheck(extracted: Path) -> list[str]:
    """Check every extracted package (a stat against its stamp, a hash where that
    differs) and remove those that fail. Garbage collection runs this under the cache's
    exclusive lock after deleting prefixes: unlinking a prefix's files changes their
    ctime, and the hashing that costs is better done there than in the next build."""
    removed = []
    for package in sorted(p for p in extracted.iterdir() if p.is_dir()):
        if not _check_one(package):
            shutil.rmtree(package, ignore_errors=True)
            _stamp_path(package).unlink(missing_ok=True)
            removed.append(package.name)
    return removed


def restamp(archives: list[Path]) -> list[str]:
    """After linking: stamp every extracted package of ``archives`` with its files' new
    stats (linking changed their ctimes). A package seen for the first time, or whose
    files changed more than a link changes (size or mtime), is hashed against its
    ``paths.json`` first; one that does not match is removed and its name returned: the
    prefix just linked from it must not be used."""
    bad = []
    for archive in archives:
        package = extracted_dir(archive)
        if not _restamp_one(package):
            shutil.rmtree(package, ignore_errors=True)
            _stamp_path(package).unlink(missing_ok=True)
            bad.append(package.name)
    return bad


def _restamp_one(package: Path) -> bool:
    try:
        try:  # the files the stamp already names: no need to parse paths.json again
            old: dict[str, list[int]] | None = json.loads(_stamp_path(package).read_text())
        except (OSError, ValueError):
            old = None
        paths = list(old) if old else _stamped_paths(package)
        new = _stats(package, paths)
        if (old is None or any(old[rel][:2] != new[rel][:2] for rel in paths)) and \
                not _content_ok(package, _entries(package)):
            return False
        _write_stamp(package, new)
    except (OSError, ValueError, KeyError) as exc:  # the next build hashes it
        logger.warning("package cache: could not stamp %s: %s", package.name, exc)
    return True


def forget(archive: Path) -> None:
    """Drop an archive, its verification and its extracted package (to fetch again)."""
    package = extracted_dir(archive)
    shutil.rmtree(package, ignore_errors=True)
    _stamp_path(package).unlink(missing_ok=True)
    archive.unlink(missing_ok=True)
    archive.with_name(archive.name + ".verified").unlink(missing_ok=True)


__all__ = ["check_extracted", "extracted_dir", "forget", "recheck", "restamp", "stamp_owner"]
