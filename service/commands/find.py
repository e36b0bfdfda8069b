"""Commands that look things up on the service: find (environments, by name, package,
state or Dask verdict, in every namespace you may read) and search (package names in the
service's channels)."""

from __future__ import annotations

import argparse
from typing import Any

from envyard.builder.errors import UsageError
from envyard.service.commands.remote import add_remote_options, client_for
from envyard.service.console import emit_json, info

#: ``envyard find`` stops after this many environments unless --limit says otherwise.
FIND_LIMIT = 200
PAGE = 100
WIDTH = 80


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def find_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per environment (and its description beneath), within 80 columns."""
    if not rows:
        return ["no environment matches"]
    out = [f"{'ENVIRONMENT':<28} {'CURRENT':<7} {'NEWEST':<14} {'DASK':<9} UPDATED"]
    for r in rows:
        current = f"v{r['current_version']}" if r["current_version"] is not None else "-"
        newest = "-" if r["latest_version"] is None else (
            "same" if r["latest_version"] == r["current_version"]
            else f"v{r['latest_version']} {r['latest_state']}")
        updated = (r["updated_at"] or "")[:16].replace("T", " ")
        out.append(f"{_cut(r['namespace'] + '/' + r['name'], 28):<28} {current:<7} "
                   f"{_cut(newest, 14):<14} {r['dask'] or '-':<9} {updated}")
        if r.get("description"):
            out.append("  " + _cut(" ".join(r["description"].split()), WIDTH - 2))
    return out


def cmd_find(args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    client = client_for(args)
    params: dict[str, Any] = {"package": args.package or []}
    for key in ("search", "state", "dask"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(rows) < args.limit:
        page = client.get("/api/v1/environments", params={
            **params, "limit": min(PAGE, args.limit - len(rows)),
            **({"cursor": cursor} if cursor else {})}, retries=2)
        rows += page["environments"]
        cursor = page["next"]
        if cursor is None:
            break
    if args.json:
        emit_json({"environments": rows, "more": cursor is not None})
        return
    for line in find_lines(rows):
        print(line)
    if cursor is not None:
        info(f"(the first {len(rows)} shown; --limit N for more)")


def search_lines(rows: list[dict[str, Any]], platform: str) -> list[str]:
    """One line per package: its name, newest version and the versions before it."""
    if not rows:
        return [f"no package matches on {platform}"]
    channels = {r["channel"] for r in rows}
    out = []
    for r in rows:
        older = ", ".join(r["versions"][1:])
        line = f"{_cut(r['name'], 30):<30} {_cut(r['latest'], 16):<16}"
        if len(channels) > 1:
            line += f" [{_cut(r['channel'], 20)}]"
        if older:
            line += " (" + older + ")"
        out.append(_cut(line, WIDTH))
    return out


def cmd_search(args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"search": args.pattern, "limit": args.limit}
    if args.platform:
        params["platform"] = args.platform
    data = client_for(args).get("/api/v1/packages", params=params, retries=3)
    if args.json:
        emit_json(data)
        return
    for line in search_lines(data["packages"], data["platform"]):
        print(line)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "find", help="find environments by name, package, state or Dask verdict",
        description="Environments in every namespace you may read (deleted ones are not "
        "found), ordered by namespace and name. Filters combine: an environment is shown "
        "when it matches all of them. NEWEST is the newest version when it is not the "
        "current one (a build under way, or one that failed).")
    p.add_argument("--package", "-p", action="append", metavar="P",
                   help="the current version has P (conda or pip); repeat: all of them")
    p.add_argument("--search", "-s", metavar="S",
                   help="part of NAMESPACE/NAME or of the description (any case)")
    p.add_argument("--state", metavar="S",
                   help="the newest version's state: ready, failed, cancelled, queued, "
                   "solving, installing, packing, or building (any of the last four)")
    p.add_argument("--dask", metavar="V", choices=["ok", "mismatch", "none", "unchecked"],
                   help="the current version's Dask pin check: ok, mismatch, none (no "
                   "distributed) or unchecked (built without cluster pins)")
    p.add_argument("--limit", type=int, default=FIND_LIMIT,
                   help=f"show at most this many (default {FIND_LIMIT})")
    add_remote_options(p)
    p.set_defaults(func=cmd_find)
    p = sub.add_parser(
        "search", help="search package names in the service's channels",
        description="Package names in the service's channels (the platform's and noarch) "
        "that start with PATTERN, then those containing it, each with its newest version "
        "and the versions before it.")
    p.add_argument("pattern", metavar="PATTERN", help="part of a package name")
    p.add_argument("--platform", help="default: the platform the service builds for")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    add_remote_options(p)
    p.set_defaults(func=cmd_search)
