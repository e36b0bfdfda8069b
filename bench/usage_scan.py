"""Usage accounting over a generated 10 GB-class tree: a first (full) scan and the
incremental report that follows from the cached per-prefix tables.

The tree is 20 prefixes x 5,000 sparse files of 100 KB apparent size (10 GB apparent, no
real disk), half of each prefix's files hardlinked from one shared set, as a package cache
makes them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from common import exit_now

from envyard.builder.layout import Layout
from envyard.service.usage import inode_table

PREFIXES, FILES, SIZE = 20, 5_000, 100_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp))
        shared = layout.root / "pkgs" / "extracted" / "shared"
        shared.mkdir(parents=True)
        for i in range(FILES // 2):
            with (shared / f"f{i}").open("wb") as f:
                f.truncate(SIZE)
        fps = []
        for p in range(PREFIXES):
            fp = f"{p:064x}"
            prefix = layout.prefix(fp)
            (prefix / "lib").mkdir(parents=True)
            for i in range(FILES // 2):
                os.link(shared / f"f{i}", prefix / "lib" / f"s{i}")
                with (prefix / "lib" / f"own{i}").open("wb") as f:
                    f.truncate(SIZE)
            fps.append(fp)
        start = time.perf_counter()
        union: dict[int, int] = {}
        for fp in fps:
            union.update(inode_table(layout, fp))
        full = time.perf_counter() - start
        start = time.perf_counter()
        union2: dict[int, int] = {}
        for fp in fps:
            union2.update(inode_table(layout, fp))
        cached = time.perf_counter() - start
        apparent = PREFIXES * FILES * SIZE
        print(f"usage over {apparent / 1e9:.0f} GB apparent ({PREFIXES * FILES} files): "
              f"{sum(union.values()) / 1e9:.2f} GB once shared files count once; first scan "
              f"{full:.2f} s, incremental report {cached:.3f} s ({full / cached:.0f}x faster)")


if __name__ == "__main__":
    main()
    exit_now()
