"""envyard: conda environments locked, built, packed and served as numbered versions.

Local commands (lock, build, pack, render, demo) run the pipeline on this machine; serve
and token run the service; submit, push, ls, show, logs, cancel and sync talk to it.
Results go to stdout (--json for scripts), progress to stderr. Exit codes: 0 success,
1 internal error, 2 usage, 10 bad spec, 11 unsolvable, 12 bad lock, 13 fetch or hash
mismatch, 14 install, 15 pack, 16 demo channel, 17 Dask pin mismatch, 20 refused by the
service, 21 service error, 22 the build failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from service.console import info


def build_parser() -> argparse.ArgumentParser:
    from service.commands import dask, images, local, remote, server

    parser = argparse.ArgumentParser(
        prog="envyard", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local.register(sub)
    server.register(sub)
    remote.register(sub)
    dask.register(sub)
    images.register(sub)
    return parser


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (errors become messages, never tracebacks)."""
    from builder.errors import EnvyardError

    try:
        args: Any = build_parser().parse_args(argv)
        args.func(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    except EnvyardError as exc:
        info(f"error: {exc}")
        return exc.exit_code
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
