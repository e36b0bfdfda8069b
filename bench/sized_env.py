"""Install, pack and disk figures on a pangeo-sized environment (885 packages, ~22,000
files, ~300 MB), the channel served over HTTP on 127.0.0.1 as a hub's mirror would be.

- cold install (empty package cache, every archive downloaded) vs the physical floor: the
  same archives fetched by `curl` 8 at a time, then `cp -al` of the finished prefix (goal
  <= 1.5x);
- warm install vs `cp -al` (goal <= 1.2x);
- `envyard pack` vs `tar | zstd -T0` of the same tree (the floor; goal <= 1.3x) and vs the
  `conda-pack` CLI (goal >= 2x faster);
- ten versions one package apart on the volume (`du`) vs one copy (goal <= 1.2x).
The channel is built once into ENVYARD_HOME (tests/sized_channel.py).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENVYARD, HOME, exit_now, median, run

from envyard.builder.install import install_lock
from envyard.builder.lock import read_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec
from tests.servers import serve_directory
from tests.sized_channel import sized_channel, sized_spec


def du(*paths: Path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", "-c", *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def ratio(name: str, ours: float, base: float, base_name: str, goal: str) -> None:
    print(f"{name}: envyard {ours:.2f} s, {base_name} {base:.2f} s, ratio {ours / base:.2f}x"
          f"  (goal {goal})")


def main() -> None:
    chan = sized_channel(HOME / "sized-channel")
    served = contextlib.ExitStack()
    url, _ = served.enter_context(serve_directory(chan))
    with tempfile.TemporaryDirectory(dir=HOME) as tmp:  # one filesystem: hardlinks
        work = Path(tmp)
        env = work / "env.yml"
        env.write_text(sized_spec())
        run([ENVYARD, "lock", str(env), "-c", url, "-p", "linux-64", "-o",
             str(work / "lock.yml"), "-q", "--home", str(work / "home")])
        lock = read_lock(work / "lock.yml")
        urls = [p.url for p in lock.for_platform("linux-64")]
        print(f"environment: {len(urls)} packages, "
              f"{sum(1 for _ in chan.glob('linux-64/*.conda'))} archives over HTTP")

        cold, floor = [], []
        for i in range(3):
            start = time.perf_counter()
            install_lock(lock, prefix=work / f"cold{i}", platform="linux-64",
                         pkgs_dir=work / f"pkgs{i}")
            cold.append(time.perf_counter() - start)
            (work / f"curl{i}").mkdir()
            start = time.perf_counter()
            subprocess.run(["xargs", "-P", "8", "-n", "50", "curl", "-s", "--fail",
                            "--remote-name-all"], input="\n".join(urls), text=True,
                           cwd=work / f"curl{i}", check=True)
            subprocess.run(["cp", "-al", str(work / "cold0"), str(work / f"floor{i}")],
                           check=True)
            floor.append(time.perf_counter() - start)
        ratio("cold install over HTTP", median(cold), median(floor),
              "parallel curl + cp -al", "<= 1.5x")
        prefix = work / "cold0"
        print(f"  installed: {du(prefix) / 1e6:.0f} MB")

        subprocess.run(["cp", "-a", str(prefix), str(work / "ref")], check=True)
        install_lock(lock, prefix=work / "stamped", platform="linux-64", pkgs_dir=work / "pkgs0")
        warm, cp = [], []
        for i in range(5):
            start = time.perf_counter()
            install_lock(lock, prefix=work / f"warm{i}", platform="linux-64",
                         pkgs_dir=work / "pkgs0")
            warm.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(["cp", "-al", str(work / "ref"), str(work / f"cp{i}")], check=True)
            cp.append(time.perf_counter() - start)
        ratio("warm install", median(warm), median(cp), "cp -al", "<= 1.2x")

        conda_pack = shutil.which("conda-pack") or str(Path(sys.executable).with_name(
            "conda-pack"))
        ours, tar, cpk = [], [], []
        for _ in range(3):
            ours.append(run([ENVYARD, "pack", str(prefix), str(work / "env.tar.zst")])[0])
            tar.append(run(["sh", "-c", f"tar -cf - -C {prefix} . | zstd -T0 -q -3 -f -o "
                                        f"{work / 'floor.tar.zst'}"])[0])
            cpk.append(run([conda_pack, "-p", str(prefix), "-o", str(work / "env.tar.gz"),
                            "--force", "-q"])[0])
        ratio("pack", median(ours), median(tar), "tar | zstd -T0", "<= 1.3x")
        print(f"  conda-pack CLI {median(cpk):.2f} s: envyard is "
              f"{median(cpk) / median(ours):.2f}x faster  (goal >= 2x)")

        versions = []
        names = sorted({p.name for p in lock.package})
        spec = parse_spec(sized_spec())
        pkgs = work / "pkgs0"
        for n in range(10):  # version n leaves out one leaf package more
            leaf = [p for p in names if not any(p in q.dependencies for q in lock.package)]
            drop = set(leaf[:n])
            text = "dependencies:\n" + "".join(f"  - {d.spec}\n" for d in spec.conda
                                               if d.spec not in drop)
            v = lock_env(parse_spec(text), LockOptions(channels=[url], platforms=["linux-64"],
                                                       cache_dir=work / "cache"))
            versions.append(install_lock(v, prefix=work / "volume" / f"v{n}",  # as the
                                         platform="linux-64", pkgs_dir=pkgs,  # service does
                                         shared_records=True).prefix)
        ten, one = du(*versions), du(work / "ref")
        print(f"ten versions one package apart: {ten / 1e6:.0f} MB on the volume, one copy "
              f"{one / 1e6:.0f} MB, ratio {ten / one:.2f}x  (goal <= 1.2x)")
    served.close()


if __name__ == "__main__":
    main()
    exit_now()
