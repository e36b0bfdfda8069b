"""The envyard pipeline as a library: spec -> solve -> lock -> install -> pack.

No HTTP and no database live here, so a laptop runs exactly what the service runs::

    from envyard.builder import LockOptions, install_lock, lock_env, pack_prefix, read_spec

    lock = lock_env(read_spec(Path("environment.yml")), LockOptions(channels=[...]))
    install_lock(lock, prefix=Path("env"), platform="linux-64", pkgs_dir=Path("pkgs"))
    pack_prefix(Path("env"), Path("env.tar.zst"))

``__all__`` is the public surface (tests pin it); the rest are the pipeline's parts. Names
are loaded on first use, so ``import envyard.builder`` costs no solver start-up. No public
name is also a module's name (a submodule's import would replace it on the package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it
_HOMES = {
    "ChannelPolicy": "spec", "EnvSpec": "spec", "parse_spec": "spec", "read_spec": "spec",
    "LockOptions": "locker", "host_platform": "locker", "lock_env": "locker",
    "Lockfile": "lock", "LockedPackage": "lock", "dump_lock": "lock", "parse_lock": "lock",
    "read_lock": "lock", "write_lock": "lock",
    "InstallResult": "install", "check_installable": "install", "install_lock": "install",
    "PackResult": "pack", "pack_prefix": "pack",
    "render_explicit": "render",
    "LockDiff": "diff", "diff_locks": "diff",
    "DaskReport": "dask", "PinSet": "dask", "pins_from_lock": "dask", "read_pins": "dask",
    "EnvyardError": "errors", "SpecError": "errors", "SolveError": "errors",
    "LockError": "errors", "FetchError": "errors", "InstallError": "errors",
    "PackError": "errors", "ChannelError": "errors", "DaskMismatch": "errors",
}

__all__ = ["ChannelError", "ChannelPolicy", "DaskMismatch", "DaskReport", "EnvSpec",
    "EnvyardError", "FetchError", "InstallError", "InstallResult", "LockDiff", "LockError",
    "LockOptions", "LockedPackage", "Lockfile", "PackError", "PackResult", "PinSet", "SolveError",
    "SpecError", "check_installable", "diff_locks", "dump_lock", "host_platform", "install_lock",
    "lock_env", "pack_prefix", "parse_lock", "parse_spec", "pins_from_lock", "read_lock",
    "read_pins", "read_spec", "render_explicit", "write_lock"]

if TYPE_CHECKING:
    from envyard.builder.dask import DaskReport, PinSet, pins_from_lock, read_pins
    from envyard.builder.diff import LockDiff, diff_locks
    from envyard.builder.errors import (
        ChannelError,
        DaskMismatch,
        EnvyardError,
        FetchError,
        InstallError,
        LockError,
        PackError,
        SolveError,
        SpecError,
    )
    from envyard.builder.install import InstallResult, check_installable, install_lock
    from envyard.builder.lock import (
        LockedPackage,
        Lockfile,
        dump_lock,
        parse_lock,
        read_lock,
        write_lock,
    )
    from envyard.builder.locker import LockOptions, host_platform, lock_env
    from envyard.builder.pack import PackResult, pack_prefix
    from envyard.builder.render import render_explicit
    from envyard.builder.spec import ChannelPolicy, EnvSpec, parse_spec, read_spec


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'envyard.builder' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"envyard.builder.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
