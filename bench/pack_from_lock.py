"""Pack from the lock (`envyard pack --from-lock`, nothing installed) vs install-then-pack
(`envyard build --pack`: install + conda-pack) of the same lock and platform (linux-64).

Whole processes, alternated, each round with a cold package cache (a fresh --home), so
both fetch every package; printed: both times and their ratio, the bytes each fetched and
each archive's size. Default: the demo notebook environment (demo channel, file://);
`--sized`: the 885-package pytorch-notebook-sized channel served over HTTP on 127.0.0.1
(built once into ENVYARD_HOME, which takes a while the first time).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

from common import ENVYARD, HOME, REPO, channel, exit_now, median, run

from envyard.builder.lock import read_lock


def _bytes_in(pkgs: Path) -> int:
    """What a cold run fetched: the package archives it left in its cache."""
    return sum(p.stat().st_size for p in pkgs.iterdir()
               if p.name.endswith((".conda", ".tar.bz2", ".whl")))


def main() -> None:
    sized = "--sized" in sys.argv[1:]
    served = contextlib.ExitStack()
    with served, tempfile.TemporaryDirectory(dir=HOME) as tmp:
        work = Path(tmp)
        if sized:
            from tests.servers import serve_directory
            from tests.sized_channel import sized_channel, sized_spec

            url, _ = served.enter_context(serve_directory(sized_channel(HOME /
                                                                        "sized-channel")))
            (work / "env.yml").write_text(sized_spec())
            source = ["-c", url]
        else:
            shutil.copyfile(REPO / "envs" / "dask-notebook.yml", work / "env.yml")
            source = ["-c", str(channel())]
        lockfile = work / "conda-lock.yml"
        run([ENVYARD, "lock", str(work / "env.yml"), *source, "-p", "linux-64", "-o",
             str(lockfile), "-q", "--home", str(work / "lock-home")])
        n = len(read_lock(lockfile).for_platform("linux-64"))
        ours, base = [], []
        fetched: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for i in range(3):
            home = work / f"ours{i}"
            ours.append(run([ENVYARD, "pack", "--from-lock", str(lockfile), "-p", "linux-64",
                             "-o", str(work / "from-lock.tar"), "-q", "--home",
                             str(home)])[0])
            fetched["ours"] = _bytes_in(home / "pkgs")
            shutil.rmtree(home)
            home = work / f"base{i}"
            base.append(run([ENVYARD, "build", str(lockfile), "--prefix",
                             str(work / f"env{i}"), "--pack", str(work / "built.tar.zst"),
                             "-q", "--home", str(home)])[0])
            fetched["base"] = _bytes_in(home / "pkgs")
            shutil.rmtree(home)
            shutil.rmtree(work / f"env{i}")
        sizes = {"ours": (work / "from-lock.tar").stat().st_size,
                 "base": (work / "built.tar.zst").stat().st_size}
        a, b = median(ours), median(base)
        print(f"environment: {n} packages (linux-64, "
              f"{'sized channel over HTTP' if sized else 'demo channel'}), cold cache")
        print(f"pack from lock: envyard pack --from-lock {a:.2f} s, fetched "
              f"{fetched['ours'] / 1e6:.1f} MB, archive {sizes['ours'] / 1e6:.1f} MB (.tar)")
        print(f"install then pack: envyard build --pack {b:.2f} s, fetched "
              f"{fetched['base'] / 1e6:.1f} MB, archive {sizes['base'] / 1e6:.1f} MB "
              "(conda-pack .tar.zst)")
        print(f"ratio {a / b:.2f}x  (pack-from-lock time / install-then-pack time; "
              "figures reported, no goal)")


if __name__ == "__main__":
    main()
    exit_now()
