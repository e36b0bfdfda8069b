"""Commands that talk to a running service: submit, preview, push, rebuild, reinstall, ls,
show, diff, logs, cancel, sync."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from envyard.builder.errors import SpecError, UsageError
from envyard.service.client import Client, client_config, plan_sync
from envyard.service.console import emit_json, info, size, timings
from envyard.service.errors import BuildFailed, RemoteError

TERMINAL = {"ready", "failed", "cancelled"}


def client_for(args: argparse.Namespace) -> Client:
    return Client(*client_config(args.server, args.token))


def env_ref(value: str) -> tuple[str, str]:
    ns, _, name = value.partition("/")
    if not ns or not name or "/" in name:
        raise UsageError(f"--env {value!r}: expected NAMESPACE/NAME")
    return ns, name


def version_ref(value: str) -> tuple[str, str, int | str | None]:
    parts = value.split("/")
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3 and (parts[2].isdigit() or parts[2] == "current"):
        return parts[0], parts[1], int(parts[2]) if parts[2].isdigit() else "current"
    raise UsageError(f"{value!r}: expected NAMESPACE/NAME or NAMESPACE/NAME/VERSION "
                     "(a number or 'current')")


def _version_ref(value: str) -> str:
    if value != "current" and not (value.isdigit() and int(value) >= 1):
        raise UsageError(f"{value!r}: expected a version number or 'current'")
    return value


def cmd_diff(args: argparse.Namespace) -> None:
    ns, name = env_ref(args.env)
    a, b = _version_ref(args.a), _version_ref(args.b)
    data = client_for(args).get(f"/api/v1/environments/{ns}/{name}/versions/{a}/diff/{b}")
    if args.json:
        emit_json(data)
        return
    print(f"{ns}/{name} v{data['a']} -> v{data['b']} on {data['platform']}: "
          + _counts(data))
    _print_diff(data)


def _counts(diff: dict[str, Any]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in diff["summary"].items() if n) or "no change"


def _print_diff(data: dict[str, Any]) -> None:
    """A diff as the API answers it, a package a line, in 80 columns."""
    from envyard.builder.diff import Change, LockDiff

    def changes(rows: list[dict[str, Any]]) -> list[Change]:
        return [Change(**row) for row in rows]

    diff = LockDiff(data["platform"], changes(data["added"]), changes(data["removed"]),
                    changes(data["changed"]))
    for line in diff.lines(width=80):
        print(line)


def _wait(client: Client, env: str, number: int, quiet: bool) -> str:
    """Follow the build log until the version is ready, failed or cancelled."""
    state = "queued"
    for event, data in client.follow_log(env, number):
        if event == "log" and not quiet:
            info(data)
        elif event == "state":
            state = json.loads(data)["state"]
    return state


def _submitted(args: argparse.Namespace, client: Client, result: dict[str, Any]) -> None:
    env, number = f"{result['namespace']}/{result['name']}", result["version"]
    if not args.json:
        print(f"{env}: version {number} queued")
    if args.wait:
        state = _wait(client, env, number, args.quiet or args.json)
        detail = client.get(f"/api/v1/environments/{env}/versions/{number}")
        if args.json:
            emit_json(detail)
        else:
            print(f"{env}: version {number} {state}")
        if state != "ready":
            raise BuildFailed(f"{env} version {number} {state}: {detail.get('error')}")
    elif args.json:
        emit_json(result)


#: A submission is retried this many times after a timeout or a 503: its Idempotency-Key
#: makes the server answer a retry with the version the first attempt made.
SUBMIT_RETRIES = 5


def _submission_headers() -> dict[str, str]:
    import uuid

    return {"Content-Type": "text/yaml", "Idempotency-Key": uuid.uuid4().hex}


def _message(args: argparse.Namespace) -> dict[str, str]:
    return {"message": args.message} if args.message else {}


def cmd_submit(args: argparse.Namespace) -> None:
    ns, name = env_ref(args.env)
    if (args.file is None) == (args.preview is None):
        raise UsageError("submit takes FILE or --preview ID (the lock a preview showed)")
    client = client_for(args)
    params = _message(args)
    if args.preview is not None:
        params["preview"] = args.preview
    elif args.full:
        params["update"] = "full"
    result = client.request("POST", f"/api/v1/environments/{ns}/{name}/versions",
                            content=_read(args.file) if args.file else b"",
                            headers=_submission_headers(), params=params,
                            retries=SUBMIT_RETRIES).json()
    _submitted(args, client, result)


def cmd_preview(args: argparse.Namespace) -> None:
    ns, name = env_ref(args.env)
    data = client_for(args).request(
        "POST", f"/api/v1/environments/{ns}/{name}/preview", content=_read(args.file),
        headers={"Content-Type": "text/yaml"},
        params={"update": "full"} if args.full else {}).json()
    if args.json:
        emit_json(data)
        return
    diff = data["diff"]
    against = f"version {data['base_version']}" if data["base_version"] else "nothing (new)"
    how = "keeping what it can" if data["solve"] == "minimal" else "a fresh solve"
    print(f"{ns}/{name} on {diff['platform']}: {_counts(diff)}")
    print(f"  against {against}, {how}")
    _print_diff(diff)
    dask = data.get("dask")
    if dask and dask["applies"]:
        verdict = "ok" if dask["ok"] else ("MISMATCH" if dask["builds"] else
                                           "MISMATCH: the namespace's policy refuses it")
        print(f"dask pin check: {verdict}")
        for v in dask["verdicts"]:
            if v["verdict"] != "match":
                print(f"  {v['package']}: {v['verdict']} (env {v['env']}, cluster "
                      f"{v['cluster']})")
    quota = data["quota"]
    if quota["quota_bytes"] is not None:
        print(f"quota: needs about {size(quota['estimate_bytes'])}; uses "
              f"{size(quota['used_bytes'])} of {size(quota['quota_bytes'])}"
              + ("" if quota["fits"] else " (OVER: the build would be refused)"))
    print(f"build exactly this (until {data['expires_at']}):")
    print(f"  envyard submit --env {ns}/{name} --preview {data['preview']}")


def _again(args: argparse.Namespace, how: str) -> None:
    ns, name, number = version_ref(args.ref)
    if number is None:
        raise UsageError(f"{how} needs NAMESPACE/NAME/VERSION (a number or 'current')")
    client = client_for(args)
    params = _message(args)
    if how == "rebuild" and args.minimal:
        params["update"] = "minimal"
    result = client.request("POST", f"/api/v1/environments/{ns}/{name}/versions/{number}/"
                            f"{how}", params=params).json()
    _submitted(args, client, result)


def cmd_rebuild(args: argparse.Namespace) -> None:
    _again(args, "rebuild")


def cmd_reinstall(args: argparse.Namespace) -> None:
    _again(args, "reinstall")


def cmd_push(args: argparse.Namespace) -> None:
    ns, name = env_ref(args.env)
    client = client_for(args)
    result = client.request("POST", f"/api/v1/environments/{ns}/{name}/locks",
                            content=_read(args.lockfile), headers=_submission_headers(),
                            params=_message(args), retries=SUBMIT_RETRIES).json()
    _submitted(args, client, result)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None


def cmd_ls(args: argparse.Namespace) -> None:
    client = client_for(args)
    if args.namespace:
        rows = client.get(f"/api/v1/namespaces/{args.namespace}")["environments"]
        if args.json:
            emit_json({"environments": rows})
            return
        for r in rows:
            print(f"{r['namespace']}/{r['name']}  current={r['current_version']}  "
                  f"latest={r['latest_version']} ({r['latest_state']})")
        return
    rows = client.get("/api/v1/namespaces")
    if args.json:
        emit_json({"namespaces": rows})
        return
    for r in rows:
        print(r["name"])


def cmd_show(args: argparse.Namespace) -> None:
    ns, name, number = version_ref(args.ref)
    client = client_for(args)
    if number is None:
        data = client.get(f"/api/v1/environments/{ns}/{name}")
        if args.json:
            emit_json(data)
            return
        current = data["current_version"]
        print(f"{ns}/{name}  current version: "
              + (str(current) if current is not None else "none yet (no version is ready)"))
        if data.get("description"):
            print(f"  {data['description']}")
        for v in data["versions"]:
            who = f"  by {v['submitted_by']}" if v.get("submitted_by") else ""
            print(f"  {v['number']:>4}  {v['state']:<10} {v['kind']:<4} {v['created_at']}{who}"
                  + (f"  {v['message']}" if v.get("message") else "")
                  + (f"  {v['error']}" if v["error"] else ""))
        return
    data = client.get(f"/api/v1/environments/{ns}/{name}/versions/{number}")
    if args.json:
        emit_json(data)
        return
    print(f"{ns}/{name} version {number}: {data['state']}"
          + (" (current)" if data.get("current") else ""))
    shown = {"error": data.get("error"),
             "timings": timings(data["timings"]) if data.get("timings") else None,
             "size": size(data["prefix_bytes"]) if data.get("prefix_bytes") else None,
             "pack": size(data["pack_bytes"]) if data.get("pack_bytes") else None,
             "fingerprint": data.get("fingerprint")}
    for key, value in shown.items():
        if value:
            print(f"  {key}: {value}")
    dask = data.get("dask")
    if dask and dask.get("applies"):
        print("  dask pin check: " + ("ok" if dask["ok"] else "MISMATCH"))
        for v in dask["verdicts"]:
            if v["verdict"] != "match":
                print(f"    {v['package']}: {v['verdict']} (env {v['env']}, cluster "
                      f"{v['cluster']}, {'required' if v['required'] else 'optional'})")
        if dask.get("lockstep"):
            print(f"    {dask['lockstep']}")
    image = data.get("image")
    if image:
        print(f"  image: {image['state']}" + (f" {image['reference']} {image['digest']}"
                                              if image["state"] == "ready" else "")
              + (f" ({image['error']})" if image.get("error") else ""))
    print(f"  packages: {len(data['packages'])}")
    for p in data["packages"]:
        print(f"    {p['name']} {p['version']}" + (" (pip)" if p["manager"] == "pip" else ""))


def cmd_logs(args: argparse.Namespace) -> None:
    ns, name, number = version_ref(args.ref)
    if number is None:
        raise UsageError("logs needs NAMESPACE/NAME/VERSION")
    client = client_for(args)
    if args.follow:
        for event, data in client.follow_log(f"{ns}/{name}", number):
            if event == "log":
                print(data, flush=True)
        return
    sys.stdout.write(client.request(
        "GET", f"/api/v1/environments/{ns}/{name}/versions/{number}/log").text)


def cmd_cancel(args: argparse.Namespace) -> None:
    ns, name, number = version_ref(args.ref)
    if number is None:
        raise UsageError("cancel needs NAMESPACE/NAME/VERSION")
    result = client_for(args).request(
        "POST", f"/api/v1/environments/{ns}/{name}/versions/{number}/cancel").json()
    if args.json:
        emit_json(result)
    else:
        print(f"{ns}/{name} version {number}: {result['state']}")


def cmd_sync(args: argparse.Namespace) -> None:
    """Every spec file in DIR is one environment; only changed files become versions."""

    client = client_for(args)
    files = sorted(p for p in args.dir.glob("*.y*ml") if p.is_file())
    if not files:
        raise SpecError(f"no environment files (*.yml) in {args.dir}")
    results, submitted = [], []
    for item in plan_sync(client, args.namespace, files):
        if item.unchanged_version is not None:
            results.append({"name": item.name, "action": "unchanged",
                            "version": item.unchanged_version})
            continue
        r = client.request("POST", f"/api/v1/environments/{args.namespace}/{item.name}/"
                           "versions", content=item.body, headers=_submission_headers(),
                           retries=SUBMIT_RETRIES).json()
        results.append({"name": item.name, "action": "submitted", "version": r["version"]})
        submitted.append((item.name, r["version"]))
    failed = []
    if args.wait:
        for name, number in submitted:
            state = _wait(client, f"{args.namespace}/{name}", number, True)
            for r in results:
                if r["name"] == name:
                    r["state"] = state
            if state != "ready":
                failed.append(f"{name} v{number} {state}")
    if args.json:
        emit_json({"namespace": args.namespace, "environments": results})
    else:
        for r in results:
            print(f"{args.namespace}/{r['name']}: {r['action']} (version {r['version']}"
                  + (f", {r['state']}" if "state" in r else "") + ")")
    if failed:
        raise BuildFailed("not ready: " + ", ".join(failed))


def add_remote_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="service URL (env ENVYARD_SERVER, or client.yml)")
    p.add_argument("--token", help="API token (env ENVYARD_TOKEN, or client.yml)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--message", help="why this change (shown in the history)")
    p.add_argument("--wait", action="store_true",
                   help="follow the build log until the version is ready or failed")
    p.add_argument("-q", "--quiet", action="store_true", help="with --wait: no log")
    add_remote_options(p)


def register(sub: Any) -> None:
    p = sub.add_parser("submit", help="send an environment.yml to the service as a new "
                       "version", description="The spec is solved on the environment's "
                       "current lock, so only what changed (and what it needs) moves; "
                       "--full solves afresh. --preview ID builds the lock a preview "
                       "showed, exactly.")
    p.add_argument("file", type=Path, nargs="?")
    p.add_argument("--env", required=True, help="NAMESPACE/NAME")
    p.add_argument("--full", action="store_true",
                   help="a fresh solve: the newest versions the spec allows")
    p.add_argument("--preview", metavar="ID", help="build this preview's lock (no FILE)")
    _add_wait(p)
    p.set_defaults(func=cmd_submit)
    p = sub.add_parser("push", help="send a conda-lock.yml to the service as a new version "
                       "(built without a solve)")
    p.add_argument("lockfile", type=Path)
    p.add_argument("--env", required=True, help="NAMESPACE/NAME")
    _add_wait(p)
    p.set_defaults(func=cmd_push)
    p = sub.add_parser("preview", help="what submitting an environment.yml would change",
                       description="Solves FILE as a submission would and prints what "
                       "changes against the current version (+ added, - removed, ~ changed "
                       "with major/minor/patch/build), the Dask pin check and the quota "
                       "estimate. Builds nothing; prints the id that builds exactly this.")
    p.add_argument("file", type=Path)
    p.add_argument("--env", required=True, help="NAMESPACE/NAME")
    p.add_argument("--full", action="store_true", help="preview a fresh solve")
    add_remote_options(p)
    p.set_defaults(func=cmd_preview)
    for cmd, func, what in (
            ("rebuild", cmd_rebuild, "solve a version's spec again (afresh) as a new version"),
            ("reinstall", cmd_reinstall, "install a version's lock again as a new version "
             "(also one garbage collection removed)")):
        p = sub.add_parser(cmd, help=what)
        p.add_argument("ref", help="NAMESPACE/NAME/VERSION (a number or 'current')")
        if cmd == "rebuild":
            p.add_argument("--minimal", action="store_true",
                           help="keep the current version's packages where the spec allows")
        _add_wait(p)
        p.set_defaults(func=func)
    p = sub.add_parser("ls", help="list namespaces, or the environments of one")
    p.add_argument("namespace", nargs="?")
    add_remote_options(p)
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("show", help="show an environment's versions, or one version")
    p.add_argument("ref", help="NAMESPACE/NAME or NAMESPACE/NAME/VERSION")
    add_remote_options(p)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("diff", help="what changes between two versions of an environment",
                       description="Packages added (+), removed (-) and changed (~), each "
                       "change marked major, minor, patch or build; A and B are version "
                       "numbers or 'current'.")
    p.add_argument("env", help="NAMESPACE/NAME")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    add_remote_options(p)
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("logs", help="print a version's build log")
    p.add_argument("ref", help="NAMESPACE/NAME/VERSION")
    p.add_argument("-f", "--follow", action="store_true", help="follow until the build ends")
    add_remote_options(p)
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("cancel", help="cancel a queued or running build")
    p.add_argument("ref", help="NAMESPACE/NAME/VERSION")
    add_remote_options(p)
    p.set_defaults(func=cmd_cancel)
    p = sub.add_parser("sync", help="submit every changed spec file in a folder",
                       description="Every *.yml in DIR is one environment of NAMESPACE "
                       "(named by its 'name:' or file name); files whose content the latest "
                       "version already has are skipped.")
    p.add_argument("dir", type=Path)
    p.add_argument("--namespace", required=True)
    p.add_argument("--wait", action="store_true", help="wait until every build ends")
    add_remote_options(p)
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("download-pack", help="download a version's pack for a platform "
                       "(made from its lock, not installed)",
                       description="Without --platform: list the platforms the version's "
                       "lock covers. With it: download that platform's pack (a .tar: its "
                       "locked packages as a local channel, the lock and unpack.sh); the "
                       "service makes it on the first request, which this waits for. "
                       "Then: tar -xf PACK -C DIR && sh DIR/unpack.sh PREFIX.")
    p.add_argument("ref", help="NAMESPACE/NAME/VERSION (a number or 'current')")
    p.add_argument("-p", "--platform", help="e.g. osx-arm64 (default: list the platforms)")
    p.add_argument("-o", "--output", type=Path,
                   help="file to write (default NAMESPACE-NAME-VERSION-PLATFORM.tar)")
    add_remote_options(p)
    p.set_defaults(func=cmd_download_pack)


#: How long a download waits, at most, for the service to make a platform pack.
PACK_WAIT = 1800.0


def cmd_download_pack(args: argparse.Namespace) -> None:
    ns, name, number = version_ref(args.ref)
    if number is None:
        raise UsageError("download-pack needs NAMESPACE/NAME/VERSION")
    client = client_for(args)
    base = f"/api/v1/environments/{ns}/{name}/versions/{number}"
    if args.platform is None:
        data = client.get(f"{base}/platforms", retries=3)
        if args.json:
            emit_json(data)
            return
        for row in data["platforms"]:
            made = size(row["bytes"]) if row["available"] else "made on first download"
            print(f"{row['platform']:<16} {row['conda_packages']:>4} conda + "
                  f"{row['pip_packages']} pip  {made}")
        return
    out = args.output or Path(f"{ns}-{name}-{number}-{args.platform}.tar")
    written = _download(client, f"{base}/packs/{args.platform}", out)
    if args.json:
        emit_json({"path": str(out), "platform": args.platform, "bytes": written})
    else:
        print(f"{out}: {size(written)}; unpack: tar -xf {out} -C DIR && sh DIR/unpack.sh "
              "PREFIX")


def _download(client: Client, path: str, out: Path) -> int:
    """Stream ``path`` to ``out`` (complete or absent), waiting while the service answers
    503 (the pack is being made) for up to ``PACK_WAIT`` seconds."""
    import time

    import httpx

    give_up = time.monotonic() + PACK_WAIT
    while True:
        try:
            with client.http.stream("GET", path, timeout=httpx.Timeout(60, read=300)) as resp:
                if resp.status_code == 503 and time.monotonic() < give_up:
                    hint = resp.headers.get("retry-after", "")
                    delay = min(float(hint), 30.0) if hint.isdigit() else 5.0
                    info(f"{json.loads(resp.read() or b'{}').get('detail', 'busy')}; "
                         f"retrying in {delay:.0f} s")
                    time.sleep(delay)
                    continue
                if resp.status_code >= 400:
                    resp.read()
                    client._check(resp)
                tmp = out.with_name(f".{out.name}.download")
                written = 0
                try:
                    with tmp.open("wb") as f:
                        for chunk in resp.iter_bytes(1 << 20):
                            f.write(chunk)
                            written += len(chunk)
                    tmp.replace(out)
                finally:
                    tmp.unlink(missing_ok=True)
                return written
        except httpx.TransportError as exc:
            raise RemoteError(f"lost {client.server}: {exc}") from None
