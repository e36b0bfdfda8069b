"""The API's own surface, attacked: tokens, scopes, headers, docs, proxies, paths,
retries. Each test failed on the code before the fix it guards."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envyard.service.auth import create_token
from envyard.service.db import Database
from tests.servers import ENVYARD, Service, free_port
from tests.service.conftest import api, wait_ready

SPEC = "dependencies: [python=3.11, toolz]\n"


@pytest.mark.parametrize("days", ["0", "-1", "nan", "inf", "1e12", "-0.0", "x"])
def test_token_lifetimes_that_mean_never_or_crash_are_refused(svc: Service, days: str) -> None:
    done = subprocess.run([ENVYARD, "token", "create", "--name", "t", "--role", "a=viewer",
                           "--expires-in-days", days], env=svc.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--expires-in-days" in done.stderr and "Traceback" not in done.stderr


def test_a_short_token_expires(svc: Service) -> None:
    import time

    token = svc.token("a=viewer", expires_in_days=2 / 86400)  # two seconds
    with api(svc, token) as c:
        assert c.get("/api/v1/whoami").status_code == 200
        time.sleep(2.5)
        r = c.get("/api/v1/whoami")
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_a_token_without_roles_cannot_make_the_service_work(svc: Service) -> None:
    """Before: it made the service re-solve every environment (the what-if) and scan all
    usage and the whole GC plan, then showed it nothing."""
    db = Database(svc.env["ENVYARD_DATABASE_URL"] or f"sqlite:///{svc.root / 'envyard.db'}")
    with db.session(write=True) as s:
        nobody = create_token(s, name="nobody", roles={})
    db.engine.dispose()
    with api(svc, nobody) as c:
        r = c.post("/api/v1/dask/upgrade", json={"versions": {"dask": "2026.1.2"}})
        assert r.status_code == 403 and "no role on any namespace" in r.json()["detail"]
        assert c.get("/api/v1/usage").json() == {}
        assert c.get("/api/v1/gc/plan").json() == []
        assert c.get("/api/v1/usage/leftovers").status_code == 403


def test_reads_are_scoped_to_the_callers_namespaces(svc: Service) -> None:
    with api(svc, svc.token("scope-a=developer")) as c:
        wait_ready(c, "scope-a/env", c.post("/api/v1/environments/scope-a/env/versions",
                                            content=SPEC).json()["version"])
    with api(svc, svc.token("scope-b=developer")) as c:
        wait_ready(c, "scope-b/env", c.post("/api/v1/environments/scope-b/env/versions",
                                            content=SPEC).json()["version"])
        assert {r["namespace"] for r in c.get("/api/v1/gc/plan").json()} == {"scope-b"}
        assert set(c.get("/api/v1/usage").json()) == {"scope-b"}
        assert c.get("/api/v1/gc/plan", params={"namespace": "scope-a"}).status_code == 403


def test_api_answers_carry_security_headers(svc: Service) -> None:
    with api(svc, svc.token("hdr=viewer")) as c:
        r = c.get("/api/v1/whoami")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert r.headers["x-frame-options"] == "SAMEORIGIN"


def test_the_api_docs_load_nothing_from_outside(svc: Service) -> None:
    """Before: /docs pulled Swagger UI from a CDN, a blank page on an air-gapped hub."""
    page = httpx.get(f"{svc.url}/docs", timeout=30)
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(ref.startswith("/") for ref in refs), refs
    assert "//" not in "".join(refs)
    for ref in refs:
        asset = httpx.get(f"{svc.url}{ref}", timeout=30)
        assert asset.status_code == 200 and len(asset.content) > 400, ref
    js = httpx.get(f"{svc.url}/docs/assets/swagger-ui-bundle.js", timeout=30)
    assert js.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{svc.url}/docs/assets/..%2fetc%2fpasswd", timeout=30).status_code == 404
    assert httpx.get(f"{svc.url}/openapi.json", timeout=30).json()["info"]["title"] == "envyard"


def test_forwarded_for_is_believed_only_from_trusted_proxies(svc: Service) -> None:
    """Before: uvicorn believed X-Forwarded-For from any loopback peer."""
    with api(svc, svc.token("xff=developer")) as c:
        r = c.post("/api/v1/environments/xff/env/versions", content=SPEC,
                   headers={"X-Forwarded-For": "203.0.113.9"})
        wait_ready(c, "xff/env", r.json()["version"])
        log = c.get("/api/v1/environments/xff/env/versions/1/log").text
    assert "submitted by token 'test' from 127.0.0.1" in log
    assert "203.0.113.9" not in log


def test_only_admins_see_where_the_volume_is(svc: Service) -> None:
    with api(svc, svc.token("paths=developer")) as c:
        wait_ready(c, "paths/env", c.post("/api/v1/environments/paths/env/versions",
                                          content=SPEC).json()["version"])
        mine = c.get("/api/v1/environments/paths/env/versions/1").json()["artifacts"]
    with api(svc, svc.token("paths=admin")) as c:
        admins = c.get("/api/v1/environments/paths/env/versions/1").json()["artifacts"]
    assert mine["prefix"]["path"].startswith("prefixes/")
    assert all(str(svc.root) not in a["path"] for a in mine.values())
    assert admins["prefix"]["path"] == str(svc.root / mine["prefix"]["path"])


def test_errors_do_not_show_non_admins_where_the_volume_is(svc: Service) -> None:
    """Found by review: install and pack errors name the prefix's absolute path."""
    import sqlite3

    with api(svc, svc.token("errpaths=developer")) as c:
        n = c.post("/api/v1/environments/errpaths/env/versions", content=SPEC
                   ).json()["version"]
        wait_ready(c, "errpaths/env", n)
    with sqlite3.connect(svc.root / "envyard.db") as db:  # as an InstallError would say it
        db.execute("UPDATE versions SET error = ? WHERE number = ? AND environment_id = "
                   "(SELECT id FROM environments WHERE name = 'env' AND namespace_id = "
                   "(SELECT id FROM namespaces WHERE name = 'errpaths'))",
                   (f"could not build {svc.root}/prefixes/abc: disk", n))
    with api(svc, svc.token("errpaths=developer")) as c:
        shown = c.get(f"/api/v1/environments/errpaths/env/versions/{n}").json()["error"]
        listed = c.get("/api/v1/environments/errpaths/env").json()["versions"][-1]["error"]
    assert shown == listed == "could not build prefixes/abc: disk"


def test_an_idempotency_key_makes_one_version(svc: Service) -> None:
    with api(svc, svc.token("idem=developer")) as c:
        url = "/api/v1/environments/idem/env/versions"
        first = c.post(url, content=SPEC, headers={"Idempotency-Key": "k1"})
        again = c.post(url, content=SPEC, headers={"Idempotency-Key": "k1"})
        assert first.status_code == again.status_code == 202
        assert first.json()["version"] == again.json()["version"] == 1
        wait_ready(c, "idem/env", 1)
        late = c.post(url, content=SPEC, headers={"Idempotency-Key": "k1"})
        assert late.json()["version"] == 1 and late.json()["state"] == "ready"  # its state
        other = c.post(url, content=SPEC + "# changed\n", headers={"Idempotency-Key": "k1"})
        assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
        assert c.post(url, content=SPEC).json()["version"] == 2
        assert [v["number"] for v in c.get("/api/v1/environments/idem/env").json()
                ["versions"]] == [1, 2]


@pytest.fixture
def lossy_proxy(svc: Service) -> Iterator[str]:
    """A loopback proxy to the service that swallows the first answer (as a client that
    times out would never see it), then passes everything through."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    state = {"connections": 0}
    opened: list[socket.socket] = []

    def pipe(src: socket.socket, dst: socket.socket | None) -> None:
        try:
            while data := src.recv(65536):
                if dst is None:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", svc.port))
            opened.extend([client, upstream])
            state["connections"] += 1
            first = state["connections"] == 1
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            # the first connection's answer is read from the service and dropped
            threading.Thread(target=pipe, args=(upstream, None if first else client),
                             daemon=True).start()
            if first:
                threading.Timer(1.0, client.shutdown, args=(socket.SHUT_RDWR,)).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for s in opened:
        s.close()


def test_the_cli_retries_a_lost_submission_without_a_duplicate(
        svc: Service, lossy_proxy: str, tmp_path: Path) -> None:
    """Before: the CLI gave up (or, retried by hand, made a second version)."""
    spec = tmp_path / "env.yml"
    spec.write_text(SPEC)
    token = svc.token("retry=developer")
    done = subprocess.run([ENVYARD, "submit", str(spec), "--env", "retry/env", "--server",
                           lossy_proxy, "--token", token], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "retrying" in done.stderr and "retry/env: version 1 queued" in done.stdout
    with api(svc, token) as c:
        assert [v["number"] for v in c.get("/api/v1/environments/retry/env").json()
                ["versions"]] == [1]


@pytest.mark.parametrize("access,anonymous,status", [("off", 404, 404),
                                                     ("anonymous", 200, 200),
                                                     ("token", 403, 200)])
def test_metrics_access_is_a_setting(channel: Path, tmp_path: Path, access: str,
                                     anonymous: int, status: int) -> None:
    """'token' holds even when anonymous users may read namespaces (found by review)."""
    service = Service(tmp_path / "volume", channel, extra_env={
        "ENVYARD_METRICS": access, "ENVYARD_ANONYMOUS": "read"})
    service.root.mkdir()
    service.start()
    try:
        assert httpx.get(f"{service.url}/metrics", timeout=30).status_code == anonymous
        if access == "token":
            assert httpx.get(f"{service.url}/api/v1/usage/leftovers",
                             timeout=30).status_code == 403
        admin = service.token("*=admin")
        r = httpx.get(f"{service.url}/metrics", timeout=30,
                      headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == status
    finally:
        service.stop()


def test_a_retry_gets_its_version_even_after_the_quota_filled(svc: Service) -> None:
    """Found by review: the quota was checked before the key, so a retry after the first
    attempt's build filled the quota got 409 instead of its version."""
    with api(svc, svc.token("idem2=admin")) as c:
        url = "/api/v1/environments/idem2/env/versions"
        first = c.post(url, content=SPEC, headers={"Idempotency-Key": "q1"}).json()
        wait_ready(c, "idem2/env", first["version"])
        assert c.put("/api/v1/namespaces/idem2/quota", json={"bytes": 1}).status_code == 200
        again = c.post(url, content=SPEC, headers={"Idempotency-Key": "q1"})
        assert again.status_code == 202 and again.json()["version"] == first["version"]
        assert c.post(url, content=SPEC).status_code == 409  # a new submission: over quota
