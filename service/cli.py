"""envyard: conda environments locked, built, packed and served as numbered versions.

Local commands (lock, build, pack, render, demo) run the pipeline on this machine; serve
runs the service and token create bootstraps its tokens; submit, push, ls, show, logs,
cancel, sync, find, search, token new|list|revoke (and the rest, such as audit:
who changed what) talk to it.
Results go to stdout (--json for scripts), progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from envyard.service.console import info

#: The commands each module of ``service.commands`` registers: a run builds the parser of
#: its own command only (building all of them cost ~35 ms of every ``envyard lock``).
COMMANDS = {
    "local": ("lock", "build", "pack", "render", "demo", "pypi-names", "demo-channel"),
    "server": ("serve", "worker"),
    "tokens": ("token",),
    "remote": ("submit", "preview", "push", "rebuild", "reinstall", "ls", "show", "logs",
               "cancel", "sync", "diff", "download-pack"),
    "lifecycle": ("rollback", "hold", "unhold", "gc", "usage", "delete"),
    "find": ("find", "search"),
    "dask": ("dask",),
    "images": ("image",),
    "audit": ("audit",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser: every command, or only ``command`` when it is one of them."""
    import importlib

    from envyard.service.errors import exit_codes

    parser = argparse.ArgumentParser(
        prog="envyard", description=__doc__,
        epilog="exit codes:\n" + "".join(f"  {code:>3}  {meaning}\n"
                                        for code, meaning in exit_codes().items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [m for m, names in COMMANDS.items() if command in names] or list(COMMANDS)
    for module in modules:
        importlib.import_module(f"envyard.service.commands.{module}").register(sub)
    return parser


#: What ``envyard[service]`` adds to a laptop install; a command that needs one says so.
SERVICE_STACK = frozenset({"fastapi", "fastapi_offline", "sqlalchemy", "alembic", "uvicorn",
                           "pydantic_settings", "starlette"})


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (errors become messages, never tracebacks)."""
    from envyard.builder.errors import EnvyardError

    try:
        argv = sys.argv[1:] if argv is None else argv
        args: Any = build_parser(argv[0] if argv else None).parse_args(argv)
        args.func(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    except EnvyardError as exc:
        info(f"error: {exc}")
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVICE_STACK:
            raise
        from envyard.builder.errors import ConfigError

        info(f"error: this command runs the service, which this install lacks ({exc.name} "
             "is missing): pip install 'envyard[service]'")
        return ConfigError.exit_code
    except KeyboardInterrupt:
        info("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        info(f"internal error: {type(exc).__name__}: {exc}")
        if os.environ.get("ENVYARD_DEBUG"):
            traceback.print_exc()
        else:
            info("(set ENVYARD_DEBUG=1 to see the traceback, and please report it)")
        return 1
    return 0


def main() -> None:
    """Console entry point; ends with os._exit so rattler's threads cannot crash the exit."""
    _exit(run())
