"""Image build + push of the demo notebook environment against writing its pack alone, and
the bytes a one-package change pushes.

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

from common import REPO, channel, demo_env, exit_now

from builder.image import ImageSpec, build_image, push_image
from builder.install import install_lock
from builder.locker import LockOptions, lock_env
from builder.oci import BlobStore
from builder.pack import pack_prefix
from builder.registry import Registry
from builder.spec import parse_spec
from tests.images import RegistryServer, make_base_image

RUNS = 3


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-image-") as tmp:
        work = Path(tmp)
        _, prefix = demo_env(work, work / "pkgs")
        text = (REPO / "envs" / "dask-notebook.yml").read_text()
        spec_b = parse_spec(text.rstrip("\n") + "\n  - lz4\n")  # the list ends the file
        lock_b = lock_env(spec_b, LockOptions(channels=[str(channel())], platforms=["linux-64"],
                                              cache_dir=work / "cache"))
        prefix_b = work / "b"
        install_lock(lock_b, prefix=prefix_b, platform="linux-64", pkgs_dir=work / "pkgs")
        server = RegistryServer().start()
        try:
            registry = Registry(server.host)
            base = make_base_image(registry, "base", "1", prefix)
            image_spec = ImageSpec(base=base, dest="/opt/envyard/envs/demo/nb", title="demo/nb",
                                   lock_sha256="0" * 64, created=dt.datetime.now(dt.UTC))
            packs, images = [], []
            for run in range(RUNS):
                start = time.perf_counter()
                pack_prefix(prefix, work / f"pack{run}.tar.zst")
                packs.append(time.perf_counter() - start)
                store = BlobStore(work / f"store{run}")
                start = time.perf_counter()
                image = build_image(prefix, image_spec, store, registry)
                first = push_image(image, store, registry, f"nb{run}", ["v1"])
                images.append(time.perf_counter() - start)
            image_b = build_image(prefix_b, image_spec, store, registry)
            second = push_image(image_b, store, registry, f"nb{RUNS - 1}", ["v2"])
            registry.close()
        finally:
            server.stop()
    pack, img = statistics.median(packs), statistics.median(images)
    print(f"image build + push: {img:.2f} s, pack alone (conda-pack .tar.zst): {pack:.2f} s, "
          f"ratio {img / pack:.2f}x  (goal <= 1.5x; {len(image.layers)} environment layers)")
    print(f"bytes pushed: first version {first / 1e6:.1f} MB, one package more "
          f"{second / 1e6:.2f} MB = {100 * second / first:.1f}%  (goal < 15%)")


if __name__ == "__main__":
    main()
    exit_now()
