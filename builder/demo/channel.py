"""Build the demo channel: python, python_abi and the pinned wheels as conda packages, indexed.

The result is cached: a stamp records what it was built from, and an unchanged channel is
reused in milliseconds. A new channel is built beside the old one and renamed into place, so
a reader never sees a half-written channel.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from envyard.builder.demo.conda_package import PackageSpec, write_conda
from envyard.builder.demo.from_wheel import Target, convert_wheel
from envyard.builder.demo.python_package import python_abi_package, python_package
from envyard.builder.demo.wheels import PINS, Pin, ensure_wheels, read_pins
from envyard.builder.errors import ChannelError

#: Bump when the conversion changes, so cached channels are rebuilt.
CONVERTER_VERSION = "5"
STAMP = ".envyard-channel.json"


def _key(pins_text: str, target: Target) -> str:
    parts = [CONVERTER_VERSION, pins_text, sys.version, sys.base_prefix, repr(target)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def index_channel(channel: Path) -> None:
    """Write ``repodata.json`` for every subdir with rattler's indexer."""
    import rattler.index

    for sub in ("noarch", "linux-64"):
        (channel / sub).mkdir(parents=True, exist_ok=True)
    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False, force=True))


def build_channel(dest: Path, wheels: dict[Pin, Path], *, target: Target,
                  extra: Sequence[PackageSpec] = (),
                  progress: Callable[[str], None] | None = None) -> Path:
    """Convert ``wheels`` (pip-only ones skipped) plus python into an indexed channel."""
    specs_from: list[Callable[[], PackageSpec]] = [
        lambda: python_package(target.python), lambda: python_abi_package(target.python)]
    for pin, path in sorted(wheels.items(), key=lambda kv: kv[0].name):
        if not pin.pip_only:
            specs_from.append(functools.partial(convert_wheel, path, target))
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".channel-", dir=dest.parent))
    try:
        def one(make: Callable[[], PackageSpec]) -> Path:
            spec = make()
            out = write_conda(spec, work / spec.subdir)
            if progress:
                progress(out.name)
            return out

        with ThreadPoolExecutor() as pool:
            list(pool.map(one, specs_from))
        for spec in extra:
            write_conda(spec, work / spec.subdir)
        index_channel(work)
        old = dest.with_name(dest.name + ".old")
        if dest.exists():
            dest.rename(old)
        work.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest


def demo_channel(home: Path, *, pins_file: Path = PINS, target: Target | None = None,
                 offline: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """The demo channel under ``home``, built (and its wheels fetched) only when stale."""
    target = target or Target()
    dest = home / "demo-channel"
    key = _key(pins_file.read_text(), target)
    stamp = dest / STAMP
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return dest
    wheels = ensure_wheels(home / "wheels", pins=read_pins(pins_file), python=target.python,
                           offline=offline)
    try:
        build_channel(dest, wheels, target=target, progress=progress)
    except (OSError, ValueError) as exc:
        raise ChannelError(f"could not build the demo channel in {dest}: {exc}") from exc
    stamp.write_text(json.dumps({"key": key}))
    return dest
