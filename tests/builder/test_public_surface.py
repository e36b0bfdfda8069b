"""The library's public surface is pinned: a change to it is a visible, reviewed decision."""

from __future__ import annotations

import subprocess
import sys

import envyard.builder

PUBLIC = [
    "ChannelError", "ChannelPolicy", "DaskMismatch", "DaskReport", "EnvSpec", "EnvyardError",
    "FetchError", "InstallError", "InstallResult", "LockDiff", "LockError", "LockOptions",
    "LockedPackage", "Lockfile", "PackError", "PackResult", "PinSet", "SolveError",
    "SpecError", "check_installable", "diff_locks", "dump_lock", "host_platform",
    "install_lock", "lock_env", "pack_prefix", "parse_lock", "parse_spec", "pins_from_lock",
    "read_lock", "read_pins", "read_spec", "render_explicit", "write_lock",
]


def test_the_public_surface_is_pinned() -> None:
    assert envyard.builder.__all__ == PUBLIC
    assert sorted(envyard.builder._HOMES) == PUBLIC  # each public name has its home


def test_every_public_name_is_the_one_its_module_defines() -> None:
    import importlib
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(envyard.builder.__path__)}
    assert not modules & set(PUBLIC)  # an import of the module would replace the name
    for name in PUBLIC:
        value = getattr(envyard.builder, name)
        home = importlib.import_module(value.__module__)
        assert getattr(home, name) is value, name


def test_importing_the_library_starts_no_solver() -> None:
    """``import envyard.builder`` is cheap: rattler and conda-pack load on first use."""
    done = subprocess.run([sys.executable, "-c",
                           "import sys, envyard.builder; "
                           "print(sorted(m for m in ('rattler', 'conda_pack', 'msgspec') "
                           "if m in sys.modules))"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        envyard.builder.lock_envs  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "lock_envs" in str(exc)
    else:
        raise AssertionError("an unknown name was found")
