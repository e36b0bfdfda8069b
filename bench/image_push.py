"""Image build + push against writing the pack alone, and the bytes a one-package change
pushes: the demo notebook environment and a pangeo-sized one (885 packages).

Both start from the same installed prefix. The image side builds every layer into a fresh
blob store (nothing reused) and pushes base + layers to a `docker-registry` on 127.0.0.1
(a fresh repository, every blob uploaded). Then the same environment plus lz4 is built and
pushed to the same repository. Goals: ratio <= 1.5x; one-package push < 15% of the first.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from common import HOME, REPO, channel, demo_env, exit_now

from envyard.builder.image import ImageSpec, build_image, push_image
from envyard.builder.install import install_lock
from envyard.builder.lock import read_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.oci import BlobStore
from envyard.builder.pack import pack_prefix
from envyard.builder.registry import Registry
from envyard.builder.spec import parse_spec
from tests.images import RegistryServer, make_base_image
from tests.sized_channel import LOCK, sized_channel, sized_spec

RUNS = 3


def measure(label: str, prefix: Path, prefix_b: Path, work: Path,
            server: RegistryServer) -> None:
    """Pack and image of ``prefix``; then the push of ``prefix_b``, one package apart."""
    registry = Registry(server.host)
    base = make_base_image(registry, f"base-{label[:4]}", "1", prefix)
    image_spec = ImageSpec(base=base, dest="/opt/envyard/envs/demo/nb", title="demo/nb",
                           lock_sha256="0" * 64, created=dt.datetime.now(dt.UTC))
    packs, images = [], []
    for run in range(RUNS):
        start = time.perf_counter()
        pack_prefix(prefix, work / f"pack{run}.tar.zst")
        packs.append(time.perf_counter() - start)
        store = BlobStore(work / f"store-{label[:4]}{run}")
        start = time.perf_counter()
        image = build_image(prefix, image_spec, store, registry)
        first = push_image(image, store, registry, f"{label[:4]}{run}", ["v1"])
        images.append(time.perf_counter() - start)
    image_b = build_image(prefix_b, image_spec, store, registry)
    second = push_image(image_b, store, registry, f"{label[:4]}{RUNS - 1}", ["v2"])
    registry.close()
    pack, img = statistics.median(packs), statistics.median(images)
    print(f"image build + push, {label}: {img:.2f} s, pack alone (conda-pack .tar.zst): "
          f"{pack:.2f} s, ratio {img / pack:.2f}x  (goal <= 1.5x; {len(image.layers)} "
          "environment layers)")
    print(f"  bytes pushed: first version {first / 1e6:.1f} MB, one package more "
          f"{second / 1e6:.2f} MB = {100 * second / first:.1f}%  (goal < 15%)")


def _installed(text: str, chan: Path, work: Path, name: str) -> Path:
    """A package cache per channel: the sized channel reuses real file names of the demo's."""
    lock = lock_env(parse_spec(text), LockOptions(channels=[str(chan)], platforms=["linux-64"],
                                                  cache_dir=work / "cache"))
    return install_lock(lock, prefix=work / name, platform="linux-64",
                        pkgs_dir=work / f"pkgs-{chan.name}").prefix


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-image-", dir=HOME) as tmp:
        work = Path(tmp)
        server = RegistryServer().start()
        try:
            _, prefix = demo_env(work, work / "pkgs")
            text = (REPO / "envs" / "dask-notebook.yml").read_text()
            prefix_b = _installed(text.rstrip("\n") + "\n  - lz4\n", channel(), work, "b")
            measure("demo env (52 pkgs)", prefix, prefix_b, work, server)
            sized = sized_channel(HOME / "sized-channel")
            full = sized_spec()
            real = read_lock(LOCK).for_platform("linux-64")
            leaf = max((p for p in real if not any(p.name in q.dependencies for q in real)),
                       key=lambda p: p.hash.sha256 or "")  # nothing needs it: drop it for A
            prefix = _installed(full.replace(f"  - {leaf.name}\n", ""), sized, work, "sized")
            prefix_b = _installed(full, sized, work, "sized-b")
            measure("pangeo-sized (884/885 pkgs)", prefix, prefix_b, work, server)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
    exit_now()
