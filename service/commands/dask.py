"""``envyard dask``: check a lock against the Dask cluster's pins, offline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from envyard.service.console import emit_json


def cmd_dask_check(args: argparse.Namespace) -> None:
    from envyard.builder.dask import DaskMismatch, check, pins_from_lock, read_pins
    from envyard.builder.lock import read_lock
    from envyard.builder.locker import host_platform

    platform = args.platform or host_platform()
    if args.pins_lock:
        pins = pins_from_lock(read_lock(args.pins_lock), platform, str(args.pins_lock))
    else:
        pins = read_pins(args.pins)
    report = check(read_lock(args.lockfile), platform, pins)
    if args.json:
        emit_json({"lockfile": str(args.lockfile), "platform": platform, "pins": pins.source,
                   **report.as_dict()})
    else:
        for line in report.lines():
            print(line)
    if report.applies and not report.ok and args.policy == "block":
        names = [v.package for v in report.blocking] + (["dask/distributed"]
                                                        if report.lockstep else [])
        raise DaskMismatch(f"{args.lockfile} does not match the cluster's pins: "
                           f"{', '.join(names)}")


def cmd_dask_pins(args: argparse.Namespace) -> None:
    from envyard.service.commands.remote import client_for

    data = client_for(args).get("/api/v1/dask/pins")
    if args.json:
        emit_json(data)
        return
    print(f"cluster pins ({data['source']}):")
    for name, version in data["versions"].items():
        print(f"  {name} {version}")


def cmd_dask_upgrade(args: argparse.Namespace) -> None:
    from envyard.builder.dask import read_pins
    from envyard.service.commands.remote import client_for

    pins = read_pins(args.pins)
    body = {"versions": pins.versions, "source": str(args.pins), "apply": args.apply}
    client = client_for(args)
    client.http.timeout = 1800
    result = client.request("POST", "/api/v1/dask/upgrade", json=body).json()
    if args.json:
        emit_json(result)
        return
    print(f"{'environment':<28} {'current':<34} {'would be':<34} result")
    for r in result["rows"]:
        cur = " ".join(f"{k}={v}" for k, v in r["current"].items() if k != "python")
        new = " ".join(f"{k}={v}" for k, v in (r["would_be"] or {}).items() if k != "python")
        status = "solvable" if r["solvable"] else f"conflict: {r['conflict'].splitlines()[0]}"
        print(f"{r['environment']:<28} {cur:<34} {new or '-':<34} {status}")
    for s in result.get("submitted", []):
        print(f"submitted {s['environment']} version {s['version']}")
    if args.apply:
        print("the cluster pins move when every submitted version is ready")


def register(sub: Any) -> None:
    dask = sub.add_parser("dask", help="Dask cluster pin checks").add_subparsers(
        dest="dask_command", required=True, metavar="ACTION")
    p = dask.add_parser("check", help="check a lock against the cluster's pinned versions",
                        description="Compare the packages distributed compares between "
                        "client, scheduler and workers (python, dask, distributed, msgpack, "
                        "cloudpickle, tornado, toolz; optional numpy, pandas, lz4). Works "
                        "offline, before `envyard push`. Exit 17 when a required package "
                        "differs (with --policy block, the default).")
    p.add_argument("lockfile", type=Path, help="the conda-lock.yml to check")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--pins", type=Path, default=Path("envs/cluster/dask-pins.yml"),
                        help="pin file (default %(default)s)")
    source.add_argument("--pins-lock", type=Path,
                        help="take the pins from the lock the cluster image is built from")
    p.add_argument("-p", "--platform", help="default: this machine's")
    p.add_argument("--policy", choices=["block", "warn"], default="block",
                   help="block: exit 17 on a required mismatch; warn: report only")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dask_check)
    from envyard.service.commands.remote import add_remote_options

    p = dask.add_parser("pins", help="show the service's cluster pin set")
    add_remote_options(p)
    p.set_defaults(func=cmd_dask_pins)
    p = dask.add_parser("upgrade", help="what-if: re-lock every Dask environment against "
                        "new pins (publishes nothing unless --apply)")
    p.add_argument("--pins", type=Path, required=True, help="the proposed pin file")
    p.add_argument("--apply", action="store_true",
                   help="build the new versions; the pins move once all are ready")
    add_remote_options(p)
    p.set_defaults(func=cmd_dask_upgrade)
