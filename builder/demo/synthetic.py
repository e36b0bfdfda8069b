"""A metadata-only channel shaped like conda-forge, of any size, for solver benchmarks.

Packages form layers: each depends on a few packages of lower layers with version ranges,
as real libraries do; every name has many versions and builds, with binary packages pinned
to ``python_abi`` like conda-forge's. Nothing here is installable: the records point at
no files. Seeded, so a size always gives the same channel.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path


def _record(name: str, version: str, build: str, number: int, subdir: str,
            depends: list[str]) -> dict[str, object]:
    digest = hashlib.sha256(f"{name}-{version}-{build}".encode()).hexdigest()
    return {"name": name, "version": version, "build": build, "build_number": number,
            "depends": depends, "subdir": subdir, "md5": digest[:32], "sha256": digest,
            "size": 1000 + len(depends), "timestamp": 1700000000000, "license": "MIT"}


def synthetic_channel(dest: Path, *, records: int = 50_000, seed: int = 7,
                      subdirs: tuple[str, ...] = ("linux-64",)) -> Path:
    """Write repodata for ``subdirs`` and ``noarch``: about ``records`` records per subdir."""
    rng = random.Random(seed)
    versions_per_name, builds = 12, 2
    names = max(20, records // (versions_per_name * builds))
    pythons = ["3.10", "3.11", "3.12", "3.13"]
    packages: dict[str, dict[str, object]] = {}
    noarch: dict[str, dict[str, object]] = {}
    for py in pythons:
        abi = "cp" + py.replace(".", "")
        packages[f"python-{py}.0-h0_cpython.conda"] = _record(
            "python", f"{py}.0", "h0_cpython", 0, "linux-64", [f"python_abi {py}.* *_{abi}"])
        packages[f"python_abi-{py}-8_{abi}.conda"] = _record(
            "python_abi", py, f"8_{abi}", 8, "linux-64", [])
    for i in range(names):
        name = f"pkg{i:05d}"
        binary = i % 3 == 0
        for v in range(versions_per_name):
            version = f"{1 + v // 4}.{v % 4}.0"
            deps = []
            for _ in range(rng.randint(0, 4) if i > 10 else 0):
                j = rng.randrange(0, i)
                lo = rng.randint(1, 2)
                deps.append(f"pkg{j:05d} >={lo}.0,<{lo + 2}")
            for b in range(builds):
                if binary:
                    py = pythons[b % len(pythons) + (v % 2) * 2 % len(pythons)]
                    abi = "cp" + py.replace(".", "")
                    build = f"py{abi[2:]}h{b}_0"
                    packages[f"{name}-{version}-{build}.conda"] = _record(
                        name, version, build, 0, "linux-64",
                        [*deps, f"python >={py},<{py}.9999", f"python_abi {py}.* *_{abi}"])
                else:
                    build = f"pyhd8ed1ab_{b}"
                    rec = _record(name, version, build, b, "noarch", [*deps, "python >=3.10"])
                    rec["noarch"] = "python"
                    noarch[f"{name}-{version}-{build}.conda"] = rec
    by_subdir = {"noarch": noarch}
    for sub in subdirs:
        by_subdir[sub] = {fn: {**rec, "subdir": sub} for fn, rec in packages.items()}
    for subdir, pkgs in by_subdir.items():
        out = dest / subdir
        out.mkdir(parents=True, exist_ok=True)
        body = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": pkgs,
                "repodata_version": 1}
        (out / "repodata.json").write_text(json.dumps(body))
    return dest


def record_count(channel: Path) -> int:
    total = 0
    for repodata in channel.glob("*/repodata.json"):
        data = json.loads(repodata.read_text())
        total += len(data["packages"]) + len(data["packages.conda"])
    return total
