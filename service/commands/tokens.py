"""``envyard token``: ``new``, ``list`` and ``revoke`` ask the service, with the caller's
own token or hub login (``service.tokens`` holds the rules); ``create`` writes the first
tokens straight into the server's database, for bootstrapping."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from typing import Any

from envyard.builder.errors import UsageError
from envyard.service.commands.remote import add_remote_options, client_for
from envyard.service.console import emit_json, info

ROLES = ("viewer", "developer", "admin")


def _days(value: str) -> float:
    """``--expires-in-days``: a finite number of days in (0, 3650]."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not math.isfinite(days) or not 0 < days <= 3650:
        raise argparse.ArgumentTypeError(f"{value!r}: must be more than 0 and at most 3650 "
                                         "days (leave the option out: never expires)")
    return days


def _lifetime(value: str) -> float:
    """``token new --days``: a finite positive number (the service says its most)."""
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not math.isfinite(days) or days <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be more than 0 days")
    return days


def _roles(pairs: list[str]) -> dict[str, Any]:
    from envyard.service.catalog import check_name
    from envyard.service.errors import ServiceError
    from envyard.service.models import Role

    roles = {}
    for pair in pairs:
        ns, _, role = pair.partition("=")
        if ns != "*":
            check_name("namespace", ns)
        try:
            roles[ns] = Role(role)
        except ValueError:
            raise ServiceError(f"--role {pair}: role must be one of viewer, developer, "
                               "admin") from None
    return roles


def cmd_token_create(args: argparse.Namespace) -> None:
    from envyard.service import audit
    from envyard.service.auth import create_token
    from envyard.service.db import Database, migrate
    from envyard.service.settings import load_settings

    roles = _roles(args.role)
    settings = load_settings()
    settings.root.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    migrate(db.engine)
    expires = dt.timedelta(days=args.expires_in_days) if args.expires_in_days is not None \
        else None
    with db.session(write=True) as s:
        secret = create_token(s, name=args.name, roles=roles, expires_in=expires)
        audit.record(s, audit.local_user(), audit.Action.token_create, name=args.name,
                     roles={k: v.value for k, v in roles.items()},
                     expires_in_days=args.expires_in_days)
    if args.json:
        emit_json({"token": secret, "name": args.name,
                   "roles": {k: v.value for k, v in roles.items()}})
    else:
        print(secret)
        info("shown once; store it now (ENVYARD_TOKEN or ~/.config/envyard/client.yml)")


def _role_pairs(pairs: list[str]) -> dict[str, str]:
    """``--role NS=ROLE`` of ``token new`` (names are the service's to check)."""
    roles: dict[str, str] = {}
    for pair in pairs:
        ns, _, role = pair.partition("=")
        if not ns or role not in ROLES:
            raise UsageError(f"--role {pair!r}: expected NAMESPACE=ROLE ('*' for every "
                             f"namespace), ROLE one of {', '.join(ROLES)}")
        roles[ns] = role
    return roles


def _when(value: str | None) -> str:
    """An expiry for people: ``2026-03-02 11:30 UTC``, ``never``, or ``expired``."""
    if value is None:
        return "never"
    t = dt.datetime.fromisoformat(value).astimezone(dt.UTC)
    return "expired" if t <= dt.datetime.now(dt.UTC) else t.strftime("%Y-%m-%d %H:%M UTC")


def _role_text(roles: dict[str, str]) -> str:
    return ",".join(f"{ns}={role}" for ns, role in roles.items())


def cmd_token_new(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"name": args.name, "roles": _role_pairs(args.role)}
    if args.days is not None:
        body["expires_in_days"] = args.days
    made = client_for(args).request("POST", "/api/v1/tokens", json=body).json()
    if args.json:
        emit_json(made)
        return
    print(made["token"])
    info(f"token {made['id']} '{made['name']}': {_role_text(made['roles'])}, expires "
         f"{_when(made['expires_at'])}")
    info("shown once; store it now (ENVYARD_TOKEN or ~/.config/envyard/client.yml)")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_token_list(args: argparse.Namespace) -> None:
    rows = client_for(args).get("/api/v1/tokens")["tokens"]
    if args.json:
        emit_json({"tokens": rows})
        return
    if not rows:
        print("no tokens")
        return
    print(f"{'ID':>6}  {'NAME':<16}  {'EXPIRES':<20}  ROLES")
    for r in rows:
        mark = "*" if r["current"] else " "
        print(f"{mark}{r['id']:>5}  {_cut(r['name'], 16):<16}  {_when(r['expires_at']):<20}  "
              + _cut(_role_text(r["roles"]), 30))
    if any(r["current"] for r in rows):
        print("(* the token this command used)")


def cmd_token_revoke(args: argparse.Namespace) -> None:
    done = client_for(args).request("DELETE", f"/api/v1/tokens/{args.id}").json()
    if args.json:
        emit_json(done)
        return
    others = [i for i in done["revoked"] if i != args.id]
    print(f"revoked token {args.id}" + (
        f" and the {len(others)} made with it ({', '.join(map(str, others))})"
        if others else ""))


def _token_id(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a token id (see envyard "
                                         "token list)")
    return int(value)


def register(sub: Any) -> None:
    token = sub.add_parser(
        "token", help="make, list and revoke API tokens",
        description="new, list and revoke ask the service, authenticated by your token "
        "(ENVYARD_TOKEN) or hub login; create writes a token into the server's database "
        "directly, to make the first one.").add_subparsers(
        dest="token_command", required=True, metavar="ACTION")
    p = token.add_parser(
        "new", help="make a token holding some of your roles; print it once",
        description="Ask the service for a new token for you. Its roles must be a subset "
        "of the roles of the token you use (no higher on any namespace, '*' only if you "
        "hold '*'); it always expires, after --days or by default the service's most "
        "(the token_max_days setting), and never after the token you use. The token "
        "goes to stdout, the rest to stderr.")
    p.add_argument("name", metavar="NAME", help="what the token is for, e.g. ci")
    p.add_argument("--role", action="append", required=True, metavar="NAMESPACE=ROLE",
                   help="e.g. team=viewer, or '*=viewer' for every namespace; repeatable")
    p.add_argument("--days", type=_lifetime, metavar="N",
                   help="lifetime in days (fractions work); default: the service's most")
    add_remote_options(p)
    p.set_defaults(func=cmd_token_new)
    p = token.add_parser(
        "list", help="list your tokens (never their secrets)",
        description="The tokens of the person your token acts for: the hub user who made "
        "it, or the token made with `envyard token create` that made it.")
    add_remote_options(p)
    p.set_defaults(func=cmd_token_list)
    p = token.add_parser(
        "revoke", help="revoke one of your tokens",
        description="It stops working at once on the server that answers; other "
        "replicas may accept it for up to 10 s more. Revoking a token made with "
        "`envyard token create` also revokes every token made with it.")
    p.add_argument("id", type=_token_id, metavar="ID", help="the id `envyard token list` "
                   "shows")
    add_remote_options(p)
    p.set_defaults(func=cmd_token_revoke)

    p = token.add_parser("create", help="create a token in the server's database and print "
                         "it once (bootstrap)",
                         description="Create a token in the service's database (same "
                         "settings as `envyard serve`), e.g. the first admin's.")
    p.add_argument("--name", required=True, help="who or what the token is for")
    p.add_argument("--role", action="append", required=True, metavar="NAMESPACE=ROLE",
                   help="e.g. team=developer, or '*=admin' for every namespace; repeatable")
    p.add_argument("--expires-in-days", type=_days, metavar="DAYS",
                   help="lifetime in days, more than 0 and at most 3650 (fractions work: "
                   "0.5 is 12 hours); default: never expires")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_create)
