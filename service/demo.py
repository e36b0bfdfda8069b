"""The README's main job before the service exists: every env file in a folder, built for real.

The demo channel stands in for conda-forge; each environment is locked, installed into
``<home>/demo/envs/<name>`` and packed into ``<home>/demo/packs/<name>.tar.zst``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.demo.channel import demo_channel
from builder.errors import SpecError
from builder.install import install_lock
from builder.lock import write_lock
from builder.locker import LockOptions, host_platform, lock_env
from builder.pack import pack_prefix
from builder.spec import read_spec
from service.console import Progress


def run_demo(envs: Path, home: Path, show: Progress, out: Path | None = None
             ) -> list[dict[str, Any]]:
    """Lock, build and pack every ``*.yml`` in ``envs`` against the demo channel."""
    files = sorted(p for p in envs.glob("*.y*ml") if p.is_file())
    if not files:
        raise SpecError(f"no environment files (*.yml) in {envs}")
    show.stage("preparing the demo channel (first run downloads ~55 MB of wheels)")
    channel = demo_channel(home, progress=None)
    out = out or home / "demo"
    results = []
    for file in files:
        spec = read_spec(file)
        name = spec.name or file.stem
        show.stage(f"{name}: locking")
        lock = lock_env(spec, LockOptions(channels=[str(channel)], platforms=[host_platform()],
                                          cache_dir=home / "cache"))
        lock_path = out / "locks" / f"{name}.conda-lock.yml"
        write_lock(lock, lock_path)
        show.stage(f"{name}: installing")
        built = install_lock(lock, prefix=out / "envs" / name, platform=host_platform(),
                             pkgs_dir=home / "pkgs", force=True, variables=spec.variables,
                             progress=show.step)
        pack = out / "packs" / f"{name}.tar.zst"
        if not pack.exists() or not built.reused:
            show.stage(f"{name}: packing")
            pack_prefix(built.prefix, pack, progress=show.step)
        names = {p.name for p in lock.package}
        probe = "import dask; print(dask.__version__)" if "dask" in names else \
            "import sys; print(sys.prefix)"
        results.append({"name": name, "packages": built.conda_packages + built.pip_packages,
                        "try": f"{built.prefix}/bin/python -c '{probe}'",
                        "lock": str(lock_path), "prefix": str(built.prefix), "pack": str(pack),
                        "reused": built.reused})
    return results
