"""Shared set-up for the benchmarks: the demo channel, a lock, a built prefix, timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # for tests.servers: the same real servers the tests start

from envyard.builder.demo.channel import demo_channel  # noqa: E402
from envyard.builder.install import install_lock  # noqa: E402
from envyard.builder.lock import Lockfile  # noqa: E402
from envyard.builder.locker import LockOptions, lock_env  # noqa: E402
from envyard.builder.spec import read_spec  # noqa: E402

HOME = Path(os.environ.get("ENVYARD_HOME") or Path.home() / ".envyard")


def _precompile() -> None:
    """Byte-compile envyard as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on
    these machines) an editable checkout is compiled from source by every process, ~50 ms
    that the baselines, all in site-packages, do not pay."""
    import compileall

    for package in ("builder", "service"):
        compileall.compile_dir(REPO / package, quiet=1)


_precompile()
ENVYARD = str(Path(sys.executable).with_name("envyard"))


def channel() -> Path:
    return demo_channel(HOME, offline=True)


def demo_env(work: Path, pkgs: Path) -> tuple[Lockfile, Path]:
    """The demo notebook environment locked and built under ``work``."""
    lock = lock_env(read_spec(REPO / "envs" / "dask-notebook.yml"),
                    LockOptions(channels=[str(channel())], platforms=["linux-64"],
                                cache_dir=work / "cache"))
    prefix = work / "ref"
    install_lock(lock, prefix=prefix, platform="linux-64", pkgs_dir=pkgs)
    return lock, prefix


def run(cmd: list[str], **kw: object) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one whole process. Linux keeps a process's peak
    across exec, so the peak is only the command's when this process is smaller."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_maxrss


def exit_now() -> None:
    """End like envyard does (flush, os._exit): rattler's threads cannot crash the exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def report(name: str, ours: float, base: float, base_name: str, goal: str) -> None:
    print(f"{name}: envyard {ours:.3f} s, {base_name} {base:.3f} s, "
          f"ratio {ours / base:.2f}x  (goal {goal})")


def on_each_backend(measure: Callable[[str, str, Path], None]) -> None:
    """``measure(backend, database_url, work)`` on SQLite, then on a PostgreSQL cluster of
    its own, each in a fresh work directory with an empty ``volume``."""
    import tempfile

    from tests.servers import Postgres

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "sqlite"
        (work / "volume").mkdir(parents=True)
        measure("sqlite", "", work)
        pg = Postgres().start()
        try:
            work = Path(tmp) / "pg"
            (work / "volume").mkdir(parents=True)
            measure("postgresql", pg.new_database(), work)
        finally:
            pg.stop()
