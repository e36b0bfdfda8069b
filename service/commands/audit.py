"""``envyard audit``: who changed what on the service, and when (admins)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from envyard.builder.errors import UsageError
from envyard.service.commands.remote import add_remote_options, client_for, env_ref
from envyard.service.console import emit_json

WIDTH = 80


def _detail(detail: dict[str, Any]) -> str:
    """``key=value`` pairs, values as compact JSON unless plain text."""
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
                     for k, v in detail.items() if v is not None)


def line(event: dict[str, Any], width: int = WIDTH) -> str:
    """One event on one line of at most ``width`` columns: time (UTC, to the second),
    actor, action, what it changed, detail; cut with … when longer."""
    at = event["at"][:19].replace("T", " ")
    target = "/".join(p for p in (event["namespace"], event["environment"]) if p) or "*"
    if event["version"] is not None:
        target += f"/{event['version']}"
    text = f"{at}  {event['actor']:<16} {event['action']:<12} {target}"
    detail = _detail(event["detail"])
    if detail:
        text += f"  {detail}"
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_audit(args: argparse.Namespace) -> None:
    params: dict[str, Any] = {}
    if args.env:
        ns, name = env_ref(args.env)
        if args.namespace and args.namespace != ns:
            raise UsageError(f"--namespace {args.namespace} and --env {args.env} disagree")
        params |= {"namespace": ns, "environment": name}
    elif args.namespace:
        params["namespace"] = args.namespace
    for key in ("action", "actor", "since"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    client = client_for(args)
    events: list[dict[str, Any]] = []
    cursor = None
    while len(events) < args.limit:  # pages of at most 500 until the limit or the end
        page = client.get("/api/v1/audit", params={
            **params, "limit": min(500, args.limit - len(events)),
            **({"cursor": cursor} if cursor else {})})
        events += page["events"]
        cursor = page["next"]
        if cursor is None:
            break
    if args.json:
        emit_json({"events": events, "next": cursor})
        return
    for event in events:
        print(line(event))
    if not events:
        print("no events")
    elif cursor is not None:
        print(f"(older events: --limit {args.limit * 2})")


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100_000:
        raise argparse.ArgumentTypeError(f"{value!r}: a number of events from 1 to 100000")
    return int(value)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "audit", help="who changed what, and when (admins)",
        description="The service's audit log, newest first: who submitted, pushed, rolled "
        "back, held, cancelled, deleted, or changed a description, policy, quota or the "
        "Dask pins. An admin of '*' sees every event; an admin of a namespace only that "
        "namespace's. Times are UTC.")
    p.add_argument("--namespace", help="only this namespace's events")
    p.add_argument("--env", help="only this environment's events (NAMESPACE/NAME)")
    p.add_argument("--action", help="only this action, e.g. submit, rollback, delete_"
                   "environment, quota, dask_pins (the service lists them if it is not one)")
    p.add_argument("--actor", help="only this actor, as shown, e.g. \"token 'ci'\"")
    p.add_argument("--since", help="only events at or after this time (ISO 8601, e.g. "
                   "2026-12-01 or 2026-12-01T09:00:00+01:00; no offset: UTC)")
    p.add_argument("--limit", type=_limit, default=50, help="at most this many events "
                   "(default 50)")
    add_remote_options(p)
    p.set_defaults(func=cmd_audit)
