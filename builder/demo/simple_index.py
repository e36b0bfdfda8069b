"""A PEP 503 "simple" package index as static files, made from the demo wheels.

Tests serve it on 127.0.0.1 so that locking and installing a ``pip:`` section uses pip's
real resolver and real HTTP, with no network beyond loopback.
"""

from __future__ import annotations

import hashlib
import html
import os
import shutil
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename


def write_simple_index(wheels: list[Path], dest: Path) -> Path:
    """Lay out ``dest/simple/<name>/index.html`` and ``dest/files/*.whl``; return ``dest``."""
    files = dest / "files"
    files.mkdir(parents=True, exist_ok=True)
    by_name: dict[str, list[tuple[str, str]]] = {}
    for wheel in wheels:
        target = files / wheel.name
        if not target.exists():
            try:
                os.link(wheel, target)
            except OSError:
                shutil.copyfile(wheel, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        name: str = canonicalize_name(parse_wheel_filename(wheel.name)[0])
        by_name.setdefault(name, []).append((wheel.name, digest))
    root = dest / "simple"
    root.mkdir(exist_ok=True)
    links = []
    for name, entries in sorted(by_name.items()):
        (root / name).mkdir(exist_ok=True)
        anchors = "\n".join(f'<a href="../../files/{html.escape(fn)}#sha256={d}">'
                            f"{html.escape(fn)}</a><br/>" for fn, d in sorted(entries))
        (root / name / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n{anchors}\n</body></html>\n")
        links.append(f'<a href="{name}/">{name}</a><br/>')
    (root / "index.html").write_text("<!DOCTYPE html>\n<html><body>\n" + "\n".join(links)
                                     + "\n</body></html>\n")
    return dest
