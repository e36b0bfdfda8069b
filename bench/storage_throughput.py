"""Pack upload and download through each artifact store against a plain local copy.

A pack-sized file of incompressible bytes (a zstd pack does not compress further) is put
into and read back from the volume store, fake-gcs-server and moto's S3 server, each on
127.0.0.1, with envyard's own code (conditional, checksummed, parts in parallel). The
baseline is ``shutil.copyfile`` on the same disk, measured in the same run. Prints MB/s
and the ratio to the copy for every backend and direction (best of 3).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import exit_now

from envyard.service.settings import Settings
from envyard.service.storage import open_store
from tests import objectstores

MB = 1 << 20
SIZE = int(sys.argv[1]) * MB if len(sys.argv) > 1 else 256 * MB


def best(fn, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="envyard-bench-storage-") as tmp:
        work = Path(tmp)
        src = work / "pack.tar.zst"
        with src.open("wb") as f:
            for _ in range(SIZE // (16 * MB)):
                f.write(os.urandom(16 * MB))
        copy = best(lambda i: shutil.copyfile(src, work / f"copy{i}"))
        mbs = SIZE / MB
        print(f"{mbs:.0f} MB pack; baseline local copy {mbs / copy:.0f} MB/s")
        for backend in ("local", "gcs", "s3"):
            server = None if backend == "local" else objectstores.start(backend, work)
            storage = {} if server is None else server.storage()
            store = open_store(Settings(root=work / f"vol-{backend}", storage=storage))
            try:
                up = best(lambda i, s=store: s.put(f"packs/p{i}.tar.zst", src))
                down = best(lambda i, s=store, b=backend: s.download(
                    f"packs/p{i}.tar.zst", work / f"back-{b}{i}"))
            finally:
                if server is not None:
                    server.stop()
            print(f"{backend:>5}: upload {mbs / up:6.0f} MB/s ({up / copy:5.1f}x the copy's "
                  f"time), download {mbs / down:6.0f} MB/s ({down / copy:5.1f}x)")


if __name__ == "__main__":
    main()
    exit_now()
