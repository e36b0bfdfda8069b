"""The envyard CLI against a running service: submit, push, ls, show, logs, cancel, sync."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.servers import ENVYARD, Service


@pytest.fixture(scope="module")
def cli(service: Service):  # type: ignore[no-untyped-def]
    token = service.token("cli=developer")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ENVYARD_SERVER": service.url, "ENVYARD_TOKEN": token}
        done = subprocess.run([ENVYARD, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode >= 0 and "Traceback" not in done.stderr, done.stderr
        if check:
            assert done.returncode == 0, done.stderr
        return done

    return run


def test_submit_wait_show_logs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies: [python=3.11, toolz]\n")
    done = cli("submit", str(spec), "--env", "cli/tools", "--wait")
    assert "cli/tools: version 1 ready" in done.stdout
    assert "[installing]" in done.stderr  # the followed log
    show = json.loads(cli("show", "cli/tools/1", "--json").stdout)
    assert show["state"] == "ready" and any(p["name"] == "toolz" for p in show["packages"])
    shown = cli("show", "cli/tools/1").stdout
    assert "version 1: ready (current)" in shown
    assert " MB" in shown and "{" not in shown  # sizes and times for people, not dicts
    assert re.search(r"timings: solve [\d.]+ s, install [\d.]+ s", shown), shown
    assert "current version: 1" in cli("show", "cli/tools").stdout
    assert "ready" in cli("logs", "cli/tools/1").stdout
    assert "ready" in cli("logs", "cli/tools/1", "-f").stdout
    assert "cli/tools  current=1" in cli("ls", "cli").stdout
    assert "cli" in cli("ls").stdout.split()


def test_push_and_failed_build_exit_code(cli, channel: Path,  # type: ignore[no-untyped-def]
                                         tmp_path: Path) -> None:
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies: [python=3.11, msgpack-python]\n")
    lock = tmp_path / "conda-lock.yml"
    cli("lock", str(spec), "-c", str(channel), "-o", str(lock), "-q", "--home",
        str(tmp_path / "h"))
    result = json.loads(cli("push", str(lock), "--env", "cli/pushed", "--wait",
                            "--json").stdout)
    assert result["state"] == "ready" and "solve" not in result["timings"]
    bad = tmp_path / "bad.yml"
    bad.write_text("dependencies: [python=3.11, dask=2025.12.0, distributed=2026.1.2]\n")
    done = cli("submit", str(bad), "--env", "cli/broken", "--wait", check=False)
    assert done.returncode == 22 and "cannot be satisfied" in done.stderr
    assert "current version: none yet" in cli("show", "cli/broken").stdout  # was "None"


def test_refusals_exit_codes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yml"
    bad.write_text("dependencies: [python\n")
    done = cli("submit", str(bad), "--env", "cli/x", check=False)
    assert done.returncode == 20 and "422" in done.stderr and "cli/x.yml:2" in done.stderr
    done = cli("show", "other/x", check=False)
    assert done.returncode == 20 and "403" in done.stderr
    done = cli("submit", str(bad), "--env", "nonsense", check=False)
    assert done.returncode == 2 and "NAMESPACE/NAME" in done.stderr  # usage (was 10)
    done = cli("ls", "--server", "http://127.0.0.1:9", check=False)
    assert done.returncode == 20 and "cannot reach" in done.stderr


def test_cancel_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies: [python=3.11, dask, distributed, numpy, pandas, lz4]\n")
    number = json.loads(cli("submit", str(spec), "--env", "cli/slow", "--json").stdout
                        )["version"]
    out = cli("cancel", f"cli/slow/{number}").stdout
    assert "cancel" in out
    done = cli("logs", f"cli/slow/{number}", "-f")
    assert "cancelled" in done.stdout or "ready" in done.stdout


def test_sync_submits_only_changed_files(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "envs"
    folder.mkdir()
    (folder / "a.yml").write_text("dependencies: [python=3.11, toolz]\n")
    (folder / "b.yml").write_text("name: bee\ndependencies: [python=3.11, pyyaml]\n")
    first = json.loads(cli("sync", str(folder), "--namespace", "cli", "--wait", "--json"
                           ).stdout)
    assert {r["name"]: r["action"] for r in first["environments"]} == {
        "a": "submitted", "bee": "submitted"}
    assert all(r["state"] == "ready" for r in first["environments"])
    (folder / "a.yml").write_text("dependencies: [python=3.11, toolz, msgpack-python]\n")
    second = json.loads(cli("sync", str(folder), "--namespace", "cli", "--json").stdout)
    assert {r["name"]: (r["action"], r["version"]) for r in second["environments"]} == {
        "a": ("submitted", 2), "bee": ("unchanged", 1)}


def test_token_new_list_revoke(cli) -> None:  # type: ignore[no-untyped-def]
    """Tokens made through the service with the caller's own token: the secret alone on
    stdout, a list for 80 columns without secrets, revoke by id; `token create` is the
    only one that needs the database."""
    assert "subset" in cli("token", "new", "--help").stdout
    done = cli("token", "new", "ci", "--role", "cli=viewer", "--days", "7")
    secret = done.stdout.strip()
    assert secret.startswith("ey_") and done.stdout == secret + "\n"
    assert "'ci': cli=viewer, expires 20" in done.stderr and "shown once" in done.stderr
    made = json.loads(cli("token", "new", "notebook-of-a-rather-long-name", "--role",
                          "cli=developer", "--json").stdout)
    rows = json.loads(cli("token", "list", "--json").stdout)["tokens"]
    assert [r["name"] for r in rows][-2:] == ["ci", "notebook-of-a-rather-long-name"]
    table = cli("token", "list").stdout
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "NAME", "EXPIRES", "ROLES"]
    assert all(len(line) <= 80 for line in lines), table
    assert "ey_" not in table and "never" in table and "(* the token this command used)" \
        in table
    assert any(line.startswith("*") and "cli=developer" in line for line in lines)
    assert any(f"{made['id']}  notebook-of-a-r…" in line for line in lines), table
    with_new = cli("token", "list", "--token", made["token"]).stdout
    assert [line.lstrip("*").split()[0] for line in with_new.splitlines()[1:-1]] == \
        [str(r["id"]) for r in rows]  # the same person's tokens, seen from another of them
    assert f"*{made['id']:>5}  notebook" in with_new
    # refusals: the service's (exit 20, its status and words), the command line's (exit 2)
    done = cli("token", "new", "x", "--role", "cli=admin", check=False)
    assert done.returncode == 20 and "403" in done.stderr and "cli=admin" in done.stderr
    done = cli("token", "new", "x", "--role", "cli=viewer", "--days", "3651", check=False)
    assert done.returncode == 20 and "token_max_days" in done.stderr
    for bad in (["new", "x", "--role", "cli"], ["new", "x", "--role", "cli=owner"],
                ["new", "x", "--role", "cli=viewer", "--days", "0"], ["revoke", "abc"]):
        done = cli("token", *bad, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (bad, done.stderr)
    assert cli("token", "revoke", str(made["id"])).stdout == f"revoked token {made['id']}\n"
    done = cli("token", "revoke", str(made["id"]), check=False)
    assert done.returncode == 20 and "404" in done.stderr
    done = cli("token", "list", "--token", made["token"], check=False)
    assert done.returncode == 20 and "401" in done.stderr
