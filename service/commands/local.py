"""Commands that run the pipeline on this machine: lock, build, pack, render, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from envyard.service.console import emit_json, info, progress
from envyard.service.options import DEFAULT_HOME, common


def cmd_lock(args: argparse.Namespace) -> None:
    from envyard.builder.errors import SpecError
    from envyard.builder.lock import read_lock, write_lock
    from envyard.builder.locker import LockOptions, lock_env
    from envyard.builder.network import Credentials, Network
    from envyard.builder.spec import ChannelPolicy, read_spec
    from envyard.builder.virtual import load_virtual_packages

    policy = ChannelPolicy.of(args.allow_channel or None)
    spec = read_spec(args.file, policy=policy)
    refused = [c for c in args.channel if not policy.check(c)]
    if refused:
        raise SpecError(f"channel '{refused[0]}' is not allowed here (allowed: "
                        f"{policy.shown()})")
    mirrors: dict[str, list[str]] = {}
    for item in args.mirror:
        channel, sep, url = item.partition("=")
        if not (sep and channel and url):
            raise SpecError(f"--mirror {item!r}: expected CHANNEL=URL")
        mirrors.setdefault(channel, []).append(url)
    network = Network.of(mirrors, Credentials.from_environment())
    previous = read_lock(args.output) if args.update else None
    pins: list[str] = []
    if args.follow_pins:
        from envyard.builder.dask import constraints, read_pins

        pins = constraints(read_pins(args.follow_pins))
    with progress(not args.quiet and not args.json) as show:
        lock = lock_env(spec, LockOptions(
            channels=args.channel, platforms=args.platform,
            virtual=load_virtual_packages(args.virtual_package_spec), timeout=args.timeout,
            cache_dir=args.home / "cache", pip_index=args.pip_index, previous=previous,
            update=args.update, constraints=pins, progress=show.stage, network=network))
    write_lock(lock, args.output)
    counts = {p: len(lock.for_platform(p)) for p in lock.metadata.platforms}
    if args.json:
        emit_json({"lockfile": str(args.output), "platforms": counts,
                   "content_hash": lock.metadata.content_hash})
        return
    for platform, n in counts.items():
        print(f"{args.output}: {platform}: {n} packages")


def _categories(args: argparse.Namespace) -> list[str]:
    """The lock's categories to use, as conda-lock's install and render choose them."""
    return ["main", *(["dev"] if args.dev else []), *args.extras]


def _category_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", "--extras", action="append", default=[], metavar="CATEGORY",
                   help="also the packages of this optional category; repeatable")
    p.add_argument("--no-dev", dest="dev", action="store_false",
                   help="leave out the dev category (included by default, as conda-lock does)")


def cmd_build(args: argparse.Namespace) -> None:
    from envyard.builder.install import install_lock
    from envyard.builder.lock import read_lock
    from envyard.builder.locker import host_platform

    lock = read_lock(args.lockfile)
    packed = None
    with progress(not args.quiet and not args.json) as show:
        result = install_lock(lock, prefix=args.prefix, platform=args.platform or host_platform(),
                              pkgs_dir=args.home / "pkgs", force=args.force,
                              progress=show.step, categories=_categories(args))
        if args.pack is not None:
            from envyard.builder.pack import pack_prefix

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
    from envyard.builder.pack import pack_prefix

    if args.from_lock is not None:
        cmd_pack_lock(args)
        return
    if args.prefix is None or args.output is None:
        from envyard.builder.errors import UsageError

        raise UsageError("pack takes PREFIX OUTPUT, or --from-lock LOCKFILE --platform "
                         "PLATFORM")
    with progress(not args.quiet and not args.json) as show:
        packed = pack_prefix(args.prefix, args.output, threads=args.threads, level=args.level,
                             progress=show.step)
    if args.json:
        emit_json({"path": str(packed.archive), "format": packed.format,
                   "bytes": packed.bytes, "seconds": round(packed.seconds, 3)})
    else:
        print(f"{packed.archive}: {packed.bytes / 1e6:.1f} MB in {packed.seconds:.1f} s")


def cmd_pack_lock(args: argparse.Namespace) -> None:
    """A platform's packages from a lock, as a .tar with an unpack script: nothing is
    installed, so any platform the lock covers can be packed on this machine."""
    from envyard.builder.errors import UsageError
    from envyard.builder.lock import read_lock
    from envyard.builder.lock_pack import pack_lock

    if args.platform is None:
        raise UsageError("--from-lock needs --platform (one of the lock's platforms)")
    if args.prefix is not None:
        raise UsageError("--from-lock packs the lock, not a PREFIX; write the archive "
                         "with -o")
    output = args.output_file or Path(f"env-{args.platform}.tar")
    with progress(not args.quiet and not args.json) as show:
        show.stage(f"packing {args.platform} from {args.from_lock} (nothing is installed)")
        packed = pack_lock(read_lock(args.from_lock), args.platform, output,
                           pkgs_dir=args.home / "pkgs", categories=_categories(args),
                           progress=show.step)
    if args.json:
        emit_json({"path": str(packed.archive), "platform": packed.platform,
                   "conda_packages": packed.conda_packages,
                   "pip_packages": packed.pip_packages, "bytes": packed.bytes,
                   "seconds": round(packed.seconds, 3)})
        return
    print(f"{packed.archive}: {packed.platform}, {packed.conda_packages} conda + "
          f"{packed.pip_packages} pip packages, {packed.bytes / 1e6:.1f} MB in "
          f"{packed.seconds:.1f} s")
    info(f"unpack: mkdir env-pack && tar -xf {packed.archive} -C env-pack && "
         "sh env-pack/unpack.sh PREFIX")


def cmd_render(args: argparse.Namespace) -> None:
    from envyard.builder.lock import read_lock
    from envyard.builder.locker import host_platform
    from envyard.builder.render import render_explicit

    platform = args.platform or host_platform()
    text = render_explicit(read_lock(args.lockfile), platform, _categories(args))
    if args.json:
        emit_json({"platform": platform, "explicit": text,
                   "packages": sum(1 for line in text.splitlines() if "://" in line)})
    elif args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)


def cmd_demo(args: argparse.Namespace) -> None:
    from envyard.service.demo import run_demo

    with progress(not args.quiet and not args.json) as show:
        service, token, results = run_demo(args.envs, args.home, args.volume or
                                           args.home / "volume", args.port, show)
    try:
        if args.json:
            emit_json({"server": service.url, "token": token, "environments": results})
        else:
            served = ("lock", "pack", "log")  # URLs: only while the service runs
            for r in results:
                print(f"\ndemo/{r['name']} version {r['version']}: {r['state']}"
                      + (" (unchanged)" if r.get("unchanged") else "")
                      + f", {r['packages']} packages" + (f" ({r['error']})" if r["error"] else ""))
                for key in ("prefix", "lock", "pack", "log", "try", "dask"):
                    if r.get(key) and not (args.exit and key in served):
                        print(f"  {key:<7} {r[key]}")
            if args.exit:
                print(f"\nThe service has stopped (--exit); the environments stay in "
                      f"{args.volume or args.home / 'volume'}. Run `envyard demo` without "
                      "--exit to keep serving them.")
            else:
                print(f"\nThe service is at {service.url} (API docs: {service.url}/docs).")
                print(f"  export ENVYARD_SERVER={service.url} ENVYARD_TOKEN={token}")
                print("  envyard ls demo; envyard show demo/minimal/1; "
                      "envyard submit envs/minimal.yml --env demo/minimal --wait")
                print("Unpack a pack anywhere: mkdir env && tar -xf PACK -C env && "
                      "PATH=$PWD/env/bin:$PATH env/bin/conda-unpack")
        failed = [r["name"] for r in results if r["state"] != "ready"]
        if failed:
            from envyard.service.errors import BuildFailed

            raise BuildFailed(f"not ready: {', '.join(failed)}")
        if not args.exit:
            print("\nServing until Ctrl-C.", flush=True)
            service.thread.join()
    finally:
        service.stop()


def cmd_pypi_names(args: argparse.Namespace) -> None:
    from envyard.builder import pypi_names

    url = args.url or pypi_names.UPSTREAM
    path = pypi_names.refresh(url)
    info(f"the conda -> PyPI name map is now {path} (from {url})")


def cmd_demo_channel(args: argparse.Namespace) -> None:
    from envyard.builder.demo.channel import demo_channel

    print(demo_channel(args.home))


def register(sub: Any) -> None:
    """Add the local commands to the CLI's subparsers."""
    p = sub.add_parser("lock", help="solve an environment.yml into a conda-lock.yml",
                       description="Solve FILE for each platform and write a conda-lock.yml "
                       "(conda-lock's unified format, with conda-lock's content hash).")
    p.add_argument("file", type=Path, help="the environment.yml to lock")
    p.add_argument("-p", "--platform", action="append", default=[],
                   help="platform to lock for; repeat for several (default: the file's "
                   "'platforms:', else with --update the lock's, else this machine's)")
    p.add_argument("-c", "--channel", action="append", default=[],
                   help="channel (name, URL or directory) replacing the file's; repeatable")
    p.add_argument("--update", action="append", default=[], metavar="PKG",
                   help="re-lock the existing --output lock changing only PKG and what it "
                   "forces; repeatable")
    p.add_argument("-o", "--output", type=Path, default=Path("conda-lock.yml"),
                   help="lockfile to write (default %(default)s)")
    p.add_argument("--allow-channel", action="append", default=[], metavar="PATTERN",
                   help="refuse channels not matching PATTERN (fnmatch); repeatable")
    p.add_argument("--mirror", action="append", default=[], metavar="CHANNEL=URL",
                   help="read CHANNEL from the mirror at URL (the lock keeps CHANNEL's own "
                   "URLs); repeat for a fallback or another channel. Private channels and "
                   "mirrors use the credentials of RATTLER_AUTH_FILE or "
                   "~/.rattler/credentials.json (as pixi's `auth login` writes them)")
    p.add_argument("--virtual-package-spec", type=Path,
                   help="conda-lock style virtual-packages.yaml replacing the defaults")
    p.add_argument("--pip-index", help="package index URL for the pip: section")
    p.add_argument("--follow-pins", type=Path, metavar="PINFILE",
                   help="solve within the Dask cluster's pinned versions (a pin file)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds one solve may take (default %(default)s)")
    common(p)
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
    _category_options(p)
    common(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("pack", help="pack an environment into a conda-pack archive, or a "
                       "lock's platform without installing it",
                       description="Pack PREFIX into OUTPUT; unpack it anywhere and run "
                       "bin/conda-unpack. Or, with --from-lock LOCKFILE --platform "
                       "PLATFORM, pack one platform of a lock without installing it: its "
                       "packages (sha256-checked) as a local channel in a .tar with the "
                       "lock, an @EXPLICIT list and unpack.sh; on the target machine: "
                       "tar -xf PACK -C DIR && sh DIR/unpack.sh PREFIX (micromamba, mamba "
                       "or conda if found, else py-rattler).")
    p.add_argument("prefix", type=Path, nargs="?", help="environment to pack")
    p.add_argument("output", type=Path, nargs="?",
                   help="archive to write (.tar.zst, .tar.gz, .zip)")
    p.add_argument("--level", type=int, help="compression level")
    p.add_argument("--threads", type=int, default=-1, help="compression threads "
                   "(-1: all cores)")
    p.add_argument("--from-lock", type=Path, metavar="LOCKFILE",
                   help="pack a platform of this conda-lock.yml instead of a PREFIX")
    p.add_argument("-p", "--platform", help="with --from-lock: the lock's platform to pack "
                   "(e.g. osx-arm64)")
    p.add_argument("-o", dest="output_file", type=Path, metavar="OUTPUT",
                   help="with --from-lock: the .tar to write (default env-PLATFORM.tar)")
    _category_options(p)
    common(p)
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("render", help="print a lock as a conda @EXPLICIT file",
                       description="Print one platform of LOCKFILE as `conda-lock render -k "
                       "explicit` would.")
    p.add_argument("lockfile", type=Path)
    p.add_argument("-p", "--platform", help="default: this machine's")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    _category_options(p)
    common(p, home=False, quiet=False)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("demo", help="build every example environment from the demo channel",
                       description="Build the demo channel (real conda packages made "
                       "offline), start the service on its embedded defaults, and build "
                       "every *.yml in ENVS through its HTTP API as namespace 'demo'.")
    p.add_argument("--envs", type=Path, default=Path("envs"),
                   help="folder of environment files (default %(default)s)")
    p.add_argument("--volume", type=Path, help="the service's volume (default HOME/volume)")
    p.add_argument("--port", type=int, default=8765, help="port to serve on, if free "
                   "(default %(default)s)")
    p.add_argument("--exit", action="store_true",
                   help="stop the service once the environments are built")
    common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("pypi-names", help="refresh the conda-forge -> PyPI name map",
                       description="Download the current conda-forge -> PyPI name mapping "
                       "(prefix.dev's parselmouth, as pixi uses it) into ENVYARD_HOME, where "
                       "pip: sections read it instead of the one shipped with envyard.")
    p.add_argument("--url", help="where the mapping is (default: parselmouth's "
                   "compressed_mapping.json on GitHub)")
    p.set_defaults(func=cmd_pypi_names)

    p = sub.add_parser("demo-channel", help="fetch the pinned wheels and build the demo "
                       "channel", description="Download the pinned wheels once (the only "
                       "step that needs a package index) and build the demo channel.")
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="default %(default)s")
    p.set_defaults(func=cmd_demo_channel)
