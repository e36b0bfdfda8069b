"""envyard: lock, build, pack and render conda environments.

Every command prints its result on stdout (--json for scripts) and progress on stderr, and
exits with a code scripts can rely on: 0 success, 1 internal error, 2 usage, 10 bad spec,
11 unsolvable, 12 bad lock, 13 fetch or hash mismatch, 14 install, 15 pack, 16 demo channel.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from service.console import emit_json, info, progress

DEFAULT_HOME = Path(os.environ.get("ENVYARD_HOME") or Path.home() / ".envyard")


def cmd_lock(args: argparse.Namespace) -> None:
    from builder.lock import read_lock, write_lock
    from builder.locker import LockOptions, lock_env
    from builder.spec import ChannelPolicy, read_spec
    from builder.virtual import load_virtual_packages

    policy = ChannelPolicy(tuple(args.allow_channel) if args.allow_channel else None)
    spec = read_spec(args.file, policy=policy)
    previous = read_lock(args.output) if args.update else None
    with progress(not args.quiet and not args.json) as show:
        lock = lock_env(spec, LockOptions(
            channels=args.channel, platforms=args.platform,
            virtual=load_virtual_packages(args.virtual_package_spec), timeout=args.timeout,
            cache_dir=args.home / "cache", pip_index=args.pip_index, previous=previous,
            update=args.update, progress=show.stage))
    write_lock(lock, args.output)
    counts = {p: len(lock.for_platform(p)) for p in lock.metadata.platforms}
    if args.json:
        emit_json({"lockfile": str(args.output), "platforms": counts,
                   "content_hash": lock.metadata.content_hash})
        return
    for platform, n in counts.items():
        print(f"{args.output}: {platform}: {n} packages")


def cmd_build(args: argparse.Namespace) -> None:
    from builder.install import install_lock
    from builder.lock import read_lock
    from builder.locker import host_platform

    lock = read_lock(args.lockfile)
    packed = None
    with progress(not args.quiet and not args.json) as show:
        result = install_lock(lock, prefix=args.prefix, platform=args.platform or host_platform(),
                              pkgs_dir=args.home / "pkgs", force=args.force,
                              progress=show.step)
        if args.pack is not None:
            from builder.pack import pack_prefix

            packed = pack_prefix(result.prefix, args.pack, progress=show.step)
    if args.json:
        emit_json({"prefix": str(result.prefix), "platform": result.platform,
                   "reused": result.reused, "conda_packages": result.conda_packages,
                   "pip_packages": result.pip_packages, "seconds": round(result.seconds, 3),
                   "pack": None if packed is None else {
                       "path": str(packed.archive), "bytes": packed.bytes,
                       "seconds": round(packed.seconds, 3)}})
        return
    state = "already up to date" if result.reused else f"built in {result.seconds:.1f} s"
    print(f"{result.prefix}: {result.conda_packages} conda + {result.pip_packages} pip "
          f"packages, {state}")
    if packed is not None:
        print(f"{packed.archive}: {packed.bytes / 1e6:.1f} MB in {packed.seconds:.1f} s")


def cmd_pack(args: argparse.Namespace) -> None:
    from builder.pack import pack_prefix

    with progress(not args.quiet and not args.json) as show:
        packed = pack_prefix(args.prefix, args.output, threads=args.threads, level=args.level,
                             progress=show.step)
    if args.json:
        emit_json({"path": str(packed.archive), "format": packed.format,
                   "bytes": packed.bytes, "seconds": round(packed.seconds, 3)})
    else:
        print(f"{packed.archive}: {packed.bytes / 1e6:.1f} MB in {packed.seconds:.1f} s")


def cmd_render(args: argparse.Namespace) -> None:
    from builder.lock import read_lock
    from builder.locker import host_platform
    from builder.render import render_explicit

    platform = args.platform or host_platform()
    text = render_explicit(read_lock(args.lockfile), platform)
    if args.json:
        emit_json({"platform": platform, "explicit": text,
                   "packages": sum(1 for line in text.splitlines() if "://" in line)})
    elif args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)


def cmd_demo(args: argparse.Namespace) -> None:
    from service.demo import run_demo

    with progress(not args.quiet and not args.json) as show:
        results = run_demo(args.envs, args.home, show, args.out)
    if args.json:
        emit_json({"environments": results})
        return
    for r in results:
        print(f"\n{r['name']}: {r['packages']} packages")
        for key in ("lock", "prefix", "pack"):
            print(f"  {key:<7} {r[key]}")
        print(f"  try it  {r['try']}")
    print("\nUnpack an archive anywhere: mkdir env && tar -xf PACK -C env && "
          "PATH=$PWD/env/bin:$PATH env/bin/conda-unpack")


def cmd_demo_channel(args: argparse.Namespace) -> None:
    from builder.demo.channel import demo_channel

    print(demo_channel(args.home))


def _common(p: argparse.ArgumentParser, *, home: bool = True, quiet: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    if home:
        p.add_argument("--home", type=Path, default=DEFAULT_HOME,
                       help="where envyard keeps its package and repodata caches and the "
                       "demo channel (env ENVYARD_HOME; default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envyard", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("lock", help="solve an environment.yml into a conda-lock.yml",
                       description="Solve FILE for each platform and write a conda-lock.yml "
                       "(conda-lock's unified format, with conda-lock's content hash).")
    p.add_argument("file", type=Path, help="the environment.yml to lock")
    p.add_argument("-p", "--platform", action="append", default=[],
                   help="platform to lock for; repeat for several (default: the file's "
                   "'platforms:', else this machine's)")
    p.add_argument("-c", "--channel", action="append", default=[],
                   help="channel (name, URL or directory) replacing the file's; repeatable")
    p.add_argument("--update", action="append", default=[], metavar="PKG",
                   help="re-lock the existing --output lock changing only PKG and what it "
                   "forces; repeatable")
    p.add_argument("-o", "--output", type=Path, default=Path("conda-lock.yml"),
                   help="lockfile to write (default %(default)s)")
    p.add_argument("--allow-channel", action="append", default=[], metavar="PATTERN",
                   help="refuse channels not matching PATTERN (fnmatch); repeatable")
    p.add_argument("--virtual-package-spec", type=Path,
                   help="conda-lock style virtual-packages.yaml replacing the defaults")
    p.add_argument("--pip-index", help="package index URL for the pip: section")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds one solve may take (default %(default)s)")
    _common(p)
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser("build", help="install a lock into an environment (and pack it)",
                       description="Install exactly the packages of LOCKFILE at PREFIX: every "
                       "package's sha256 checked, nothing visible at PREFIX until complete, "
                       "an identical lock reused.")
    p.add_argument("lockfile", type=Path, help="conda-lock.yml to build")
    p.add_argument("--prefix", type=Path, required=True, help="directory of the environment")
    p.add_argument("--pack", type=Path, help="also write a conda-pack archive "
                   "(.tar.zst, .tar.gz, .zip)")
    p.add_argument("-p", "--platform", help="platform part of the lock (default: this "
                   "machine's)")
    p.add_argument("--force", action="store_true",
                   help="replace an environment at PREFIX built from another lock")
    _common(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("pack", help="pack an environment into a conda-pack archive",
                       description="Pack PREFIX into OUTPUT; unpack it anywhere and run "
                       "bin/conda-unpack.")
    p.add_argument("prefix", type=Path, help="environment to pack")
    p.add_argument("output", type=Path, help="archive to write (.tar.zst, .tar.gz, .zip)")
    p.add_argument("--level", type=int, help="compression level")
    p.add_argument("--threads", type=int, default=-1, help="compression threads "
                   "(-1: all cores)")
    _common(p, home=False)
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("render", help="print a lock as a conda @EXPLICIT file",
                       description="Print one platform of LOCKFILE as `conda-lock render -k "
                       "explicit` would.")
    p.add_argument("lockfile", type=Path)
    p.add_argument("-p", "--platform", help="default: this machine's")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    _common(p, home=False, quiet=False)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("demo", help="build every example environment from the demo channel",
                       description="Build the demo channel (real conda packages made "
                       "offline), then lock, build and pack every *.yml in ENVS.")
    p.add_argument("--envs", type=Path, default=Path("envs"),
                   help="folder of environment files (default %(default)s)")
    p.add_argument("--out", type=Path, help="where locks, environments and packs go "
                   "(default HOME/demo)")
    _common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("demo-channel", help="fetch the pinned wheels and build the demo "
                       "channel", description="Download the pinned wheels once (the only "
                       "step that needs a package index) and build the demo channel.")
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="default %(default)s")
    p.set_defaults(func=cmd_demo_channel)
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
