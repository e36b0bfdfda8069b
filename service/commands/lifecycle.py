"""Commands that look after an environment's versions on the service: rollback, hold,
unhold, gc, usage and delete (``remote.py`` submits and reads)."""

from __future__ import annotations

import argparse
from typing import Any

from envyard.builder.errors import UsageError
from envyard.service.commands.remote import (
    add_remote_options,
    client_for,
    env_ref,
    version_ref,
)
from envyard.service.console import emit_json
from envyard.service.errors import RemoteError


def cmd_delete(args: argparse.Namespace) -> None:
    if args.namespace:
        if "/" in args.target:
            raise UsageError(f"--namespace {args.target!r}: expected a namespace's name")
        path = f"/api/v1/namespaces/{args.target}"
    else:
        ns, name = env_ref(args.target)
        path = f"/api/v1/environments/{ns}/{name}"
    result = client_for(args).request("DELETE", path,
                                   params={"force": "true"} if args.force else {}).json()
    if args.json:
        emit_json(result)
        return
    ns = result["namespace"]
    print(f"deleted {', '.join(f'{ns}/{n}' for n in result['deleted'])}: "
          f"{result['versions']} versions, collected by the next GC (their spec, lock and "
          "log stay)")
    if result["released_holds"]:
        print(f"  released holds: {', '.join(result['released_holds'])}")


def cmd_rollback(args: argparse.Namespace) -> None:
    ns, name = env_ref(args.env)
    result = client_for(args).request("POST", f"/api/v1/environments/{ns}/{name}/rollback",
                                   json={"version": args.version}).json()
    if args.json:
        emit_json(result)
    else:
        print(f"{ns}/{name}: current is now version {result['current_version']}")


def cmd_hold(args: argparse.Namespace) -> None:
    ns, name, number = version_ref(args.ref)
    if number is None:
        raise UsageError(f"{args.command} needs NAMESPACE/NAME/VERSION")
    method = "POST" if args.command == "hold" else "DELETE"
    result = client_for(args).request(
        method, f"/api/v1/environments/{ns}/{name}/versions/{number}/hold").json()
    if args.json:
        emit_json(result)
    else:
        print(f"{ns}/{name} version {number}: " + ("held" if result["held"] else "not held"))


def cmd_gc(args: argparse.Namespace) -> None:
    client = client_for(args)
    if args.dry_run:
        rows = client.get("/api/v1/gc/plan", params={"namespace": args.namespace}
                          if args.namespace else None)
        if args.json:
            emit_json({"plan": rows})
            return
        for r in rows:
            action = "delete" if r["delete"] else "keep  "
            freed = f"  frees {r['bytes'] / 1e6:.1f} MB" if r["bytes"] else ""
            print(f"{action} {r['namespace']}/{r['name']}/{r['number']} ({r['state']}): "
                  f"{r['reason']}{freed}")
        total = sum(r["bytes"] for r in rows if r["delete"])
        print(f"would delete {sum(r['delete'] for r in rows)} version(s), "
              f"freeing {total / 1e6:.1f} MB")
        return
    result = client.request("POST", "/api/v1/gc").json()
    if args.json:
        emit_json(result)
    else:
        for name in result["deleted"]:
            print(f"deleted {name}")
        print(f"{len(result['deleted'])} version(s) deleted, "
              f"{result['pruned_cache_entries']} package cache entries pruned")


def cmd_usage(args: argparse.Namespace) -> None:
    client = client_for(args)
    report = client.get("/api/v1/usage")
    try:  # the volume's own leftovers, for tokens with a role on '*'
        left = client.get("/api/v1/usage/leftovers")
    except RemoteError:
        left = None
    if args.json:
        emit_json(report if left is None else {**report, "(leftovers)": left})
        return
    for ns, row in report.items():
        quota = f" of {row['quota_bytes'] / 1e6:.1f} MB" if row["quota_bytes"] else ""
        print(f"{ns}: {row['bytes'] / 1e6:.1f} MB{quota}")
        for env, e in row["environments"].items():
            print(f"  {env}: {e['bytes'] / 1e6:.1f} MB in {e['prefixes']} prefix(es)")
    if left and left["files"]:
        print(f"leftovers of killed processes: {left['bytes'] / 1e6:.1f} MB in "
              f"{len(left['files'])} file(s), removed by the next gc once unowned")



def register(sub: Any) -> None:
    p = sub.add_parser("delete", help="delete an environment (or with --namespace, all of a "
                       "namespace's)", description="Gone from listings and kernels at once; "
                       "its versions are collected by the next GC, their spec, lock and log "
                       "kept. Held versions refuse it unless --force.")
    p.add_argument("target", help="NAMESPACE/NAME, or NAMESPACE with --namespace")
    p.add_argument("--namespace", action="store_true", help="delete every environment of "
                   "the namespace (its admins)")
    p.add_argument("--force", action="store_true", help="also when versions are held")
    add_remote_options(p)
    p.set_defaults(func=cmd_delete)
    p = sub.add_parser("rollback", help="point an environment's current at another version")
    p.add_argument("env", help="NAMESPACE/NAME")
    p.add_argument("version", type=int)
    add_remote_options(p)
    p.set_defaults(func=cmd_rollback)
    for cmd, what in (("hold", "keep a version whatever the retention rules say"),
                      ("unhold", "let the retention rules decide about a version again")):
        p = sub.add_parser(cmd, help=what)
        p.add_argument("ref", help="NAMESPACE/NAME/VERSION")
        add_remote_options(p)
        p.set_defaults(func=cmd_hold)
    p = sub.add_parser("gc", help="apply the retention rules (or --dry-run: show the plan)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every version with the rule that keeps or deletes it")
    p.add_argument("--namespace", help="with --dry-run: only this namespace")
    add_remote_options(p)
    p.set_defaults(func=cmd_gc)
    p = sub.add_parser("usage", help="bytes per namespace and environment, with quotas")
    add_remote_options(p)
    p.set_defaults(func=cmd_usage)
