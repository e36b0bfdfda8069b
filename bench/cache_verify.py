"""What checking the package cache costs a warm install of the demo notebook environment
(52 packages, ~12,000 files): the stat of every extracted file against its stamp, which
envyard does before every link, against `cp -al` of the finished prefix (the floor of any
hardlinking installer) and against hashing every extracted file against its paths.json
(what verifying without stamps would cost every build). Same run, same cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import demo_env, exit_now, median

from envyard.builder.install import install_lock
from envyard.builder.pkgcache import check_extracted


def _hash_all(extracted: Path) -> int:
    files = 0
    for package in extracted.iterdir():
        if not package.is_dir():
            continue
        for entry in json.loads((package / "info" / "paths.json").read_text())["paths"]:
            if entry.get("sha256"):
                with (package / entry["_path"]).open("rb") as f:
                    hashlib.file_digest(f, "sha256")
                files += 1
    return files


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pkgs = work / "pkgs"
        lock, _ = demo_env(work, pkgs)
        archives = sorted(pkgs.glob("*.conda"))
        subprocess.run(["cp", "-a", str(work / "ref"), str(work / "ref-copy")], check=True)
        install_lock(lock, prefix=work / "stamped", platform="linux-64", pkgs_dir=pkgs)
        install, check, copy, hashed, after_gc = [], [], [], [], []
        for i in range(5):
            start = time.perf_counter()
            install_lock(lock, prefix=work / f"env{i}", platform="linux-64", pkgs_dir=pkgs)
            install.append(time.perf_counter() - start)
            start = time.perf_counter()
            check_extracted(archives)
            check.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(["cp", "-al", str(work / "ref-copy"), str(work / f"cp{i}")],
                           check=True)
            copy.append(time.perf_counter() - start)
            start = time.perf_counter()
            files = _hash_all(pkgs / "extracted")
            hashed.append(time.perf_counter() - start)
        for i in range(3):  # a prefix deleted since (as GC does) changed the files' ctimes
            shutil.rmtree(work / f"env{i}")
            start = time.perf_counter()
            install_lock(lock, prefix=work / f"again{i}", platform="linux-64", pkgs_dir=pkgs)
            after_gc.append(time.perf_counter() - start)
        print(f"warm install {median(install):.3f} s, of which the cache's stat check "
              f"{median(check):.3f} s ({median(check) / median(install):.0%}); cp -al "
              f"{median(copy):.3f} s: install/cp -al {median(install) / median(copy):.2f}x.\n"
              f"hashing all {files} extracted files: {median(hashed):.3f} s "
              f"({median(hashed) / median(install):.0%} of an install); an install right "
              f"after a prefix was deleted (GC normally re-checks first): "
              f"{median(after_gc):.3f} s")


if __name__ == "__main__":
    main()
    exit_now()
