"""``envyard``: lock, build, pack and render conda environments from the command line.

Every command prints its result to stdout (``--json`` for scripts), progress to stderr,
and exits with the code of the error class (see ``builder.errors``). The process ends with
``os._exit`` after flushing, so rattler's native threads can never crash interpreter exit.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from service.console import emit_json, info, progress

app = typer.Typer(help=__doc__.split("\n")[0] + "\n\nRun `envyard COMMAND --help` for details.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

HomeOpt = Annotated[Path, typer.Option(
    "--home", envvar="ENVYARD_HOME", help="Where envyard keeps its package cache, repodata "
    "cache and demo channel.", show_default=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
DEFAULT_HOME = Path.home() / ".envyard"


@app.command()
def lock(
    file: Annotated[Path, typer.Argument(help="The environment.yml to lock.")],
    platform: Annotated[list[str] | None, typer.Option(
        "--platform", "-p", help="Platform to lock for; repeat for several. Default: the "
        "file's 'platforms:', else this machine's.")] = None,
    channel: Annotated[list[str] | None, typer.Option(
        "--channel", "-c", help="Channel (name, URL or directory) replacing the file's "
        "channels; repeat for several.")] = None,
    update: Annotated[list[str] | None, typer.Option(
        "--update", help="Re-lock changing only this package and what it forces; needs an "
        "existing lock at --output.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Lockfile to write.")] = Path(
        "conda-lock.yml"),
    allow_channel: Annotated[list[str] | None, typer.Option(
        "--allow-channel", help="Only allow channels matching this pattern (fnmatch); "
        "repeat for several. Default: any.")] = None,
    virtual_package_spec: Annotated[Path | None, typer.Option(
        help="conda-lock style virtual-packages.yaml replacing the defaults.")] = None,
    pip_index: Annotated[str | None, typer.Option(
        help="Package index for the pip: section.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds a solve may take.")] = 300.0,
    home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Solve FILE for each platform and write a conda-lock.yml (unified format)."""
    from builder.lock import read_lock, write_lock
    from builder.locker import LockOptions, lock_env
    from builder.spec import ChannelPolicy, read_spec
    from builder.virtual import load_virtual_packages

    spec = read_spec(file, policy=ChannelPolicy(tuple(allow_channel) if allow_channel else None))
    previous = None
    if update:
        previous = read_lock(output)
    with progress(not quiet and not as_json) as show:
        lockfile = lock_env(spec, LockOptions(
            channels=channel or (), platforms=platform or (),
            virtual=load_virtual_packages(virtual_package_spec), timeout=timeout,
            cache_dir=home / "cache", pip_index=pip_index, previous=previous,
            update=update or (), progress=show.stage))
    write_lock(lockfile, output)
    counts = {p: len(lockfile.for_platform(p)) for p in lockfile.metadata.platforms}
    if as_json:
        emit_json({"lockfile": str(output), "platforms": counts,
                   "content_hash": lockfile.metadata.content_hash})
    else:
        for p, n in counts.items():
            print(f"{output}: {p}: {n} packages")


@app.command()
def build(
    lockfile: Annotated[Path, typer.Argument(help="conda-lock.yml to build.")],
    prefix: Annotated[Path, typer.Option("--prefix", help="Directory of the environment.")],
    pack: Annotated[Path | None, typer.Option(
        "--pack", help="Also write a conda-pack archive (.tar.zst, .tar.gz, .zip).")] = None,
    platform: Annotated[str | None, typer.Option(
        "--platform", "-p", help="Platform part of the lock to build. Default: this "
        "machine's.")] = None,
    force: Annotated[bool, typer.Option(
        help="Replace an existing environment at PREFIX built from another lock.")] = False,
    home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Install exactly the packages of LOCKFILE at PREFIX (sha256-verified, atomic)."""
    from builder.install import install_lock
    from builder.lock import read_lock
    from builder.locker import host_platform

    lock_data = read_lock(lockfile)
    with progress(not quiet and not as_json) as show:
        result = install_lock(lock_data, prefix=prefix, platform=platform or host_platform(),
                              pkgs_dir=home / "pkgs", force=force, progress=show.step)
        packed = None
        if pack is not None:
            from builder.pack import pack_prefix

            show.stage(f"packing {pack.name}")
            packed = pack_prefix(result.prefix, pack)
    if as_json:
        emit_json({"prefix": str(result.prefix), "platform": result.platform,
                   "reused": result.reused, "conda_packages": result.conda_packages,
                   "pip_packages": result.pip_packages, "seconds": round(result.seconds, 3),
                   "pack": None if packed is None else {"path": str(packed.archive),
                                                        "bytes": packed.bytes,
                                                        "seconds": round(packed.seconds, 3)}})
        return
    state = "already up to date" if result.reused else f"built in {result.seconds:.1f} s"
    print(f"{result.prefix}: {result.conda_packages} conda + {result.pip_packages} pip "
          f"packages, {state}")
    if packed is not None:
        print(f"{packed.archive}: {packed.bytes / 1e6:.1f} MB in {packed.seconds:.1f} s")


@app.command("pack")
def pack_cmd(
    prefix: Annotated[Path, typer.Argument(help="Environment to pack.")],
    output: Annotated[Path, typer.Argument(help="Archive to write (.tar.zst, .tar.gz, .zip).")],
    level: Annotated[int | None, typer.Option(help="Compression level.")] = None,
    threads: Annotated[int, typer.Option(help="Compression threads; -1 for all cores.")] = -1,
    as_json: JsonOpt = False,
) -> None:
    """Pack an environment into a conda-pack archive (unpack, then run bin/conda-unpack)."""
    from builder.pack import pack_prefix

    packed = pack_prefix(prefix, output, threads=threads, level=level)
    if as_json:
        emit_json({"path": str(packed.archive), "format": packed.format,
                   "bytes": packed.bytes, "seconds": round(packed.seconds, 3)})
    else:
        print(f"{packed.archive}: {packed.bytes / 1e6:.1f} MB in {packed.seconds:.1f} s")


@app.command()
def render(
    lockfile: Annotated[Path, typer.Argument(help="conda-lock.yml to render.")],
    platform: Annotated[str | None, typer.Option(
        "--platform", "-p", help="Default: this machine's.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print one platform of LOCKFILE as a conda @EXPLICIT file (as conda-lock render)."""
    from builder.lock import read_lock
    from builder.locker import host_platform
    from builder.render import render_explicit

    text = render_explicit(read_lock(lockfile), platform or host_platform())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


@app.command()
def demo(
    envs: Annotated[Path, typer.Option(help="Folder of environment files to build.")] = Path(
        "envs"),
    home: HomeOpt = DEFAULT_HOME, quiet: QuietOpt = False, as_json: JsonOpt = False,
) -> None:
    """Build the demo channel, then lock, build and pack every file in ENVS from it."""
    from service.demo import run_demo

    with progress(not quiet and not as_json) as show:
        results = run_demo(envs, home, show)
    if as_json:
        emit_json({"environments": results})
        return
    for r in results:
        print(f"\n{r['name']}: {r['packages']} packages")
        print(f"  lock    {r['lock']}")
        print(f"  prefix  {r['prefix']}")
        print(f"  pack    {r['pack']}")
        print(f"  try it  {r['prefix']}/bin/python -c 'import dask; print(dask.__version__)'")
    if results:
        print("\nUnpack an archive anywhere: mkdir env && tar -xf PACK -C env "
              "&& PATH=env/bin:$PATH env/bin/conda-unpack")


@app.command("demo-channel")
def demo_channel_cmd(home: HomeOpt = DEFAULT_HOME) -> None:
    """Fetch the pinned wheels (once) and build the demo channel; print its path."""
    from builder.demo.channel import demo_channel

    print(demo_channel(home))


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: map errors to messages and exit codes, never a traceback."""
    from builder.errors import EnvyardError

    code = 0
    try:
        app(args=argv, standalone_mode=False)
    except EnvyardError as exc:
        info(f"error: {exc}")
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        info("aborted")
        code = 130
    except KeyboardInterrupt:
        info("interrupted")
        code = 130
    except Exception as exc:
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a usage error from the command-line parser
            code = exc.exit_code
        else:
            info(f"internal error: {type(exc).__name__}: {exc}")
            if os.environ.get("ENVYARD_DEBUG"):
                traceback.print_exc()
            else:
                info("(set ENVYARD_DEBUG=1 for the traceback; please report it)")
            code = 1
    _exit(code)
