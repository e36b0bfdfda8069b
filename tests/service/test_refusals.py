"""Bad input gets a 4xx with a clear message and changes nothing; tokens stay in their lane."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from envyard.builder.lock import read_lock, write_lock
from tests.servers import Service
from tests.service.conftest import api, wait_ready

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
    for p, n in zip("abcdefg", "bcdefgh", strict=True)) + "dependencies: [python]\n"


def _nothing_changed(service: Service, token: str) -> None:
    with api(service, token) as c:
        r = c.get("/api/v1/namespaces/refuse")
        assert r.status_code == 404, "a refused request created something"


@pytest.mark.parametrize("body,status,words", [
    ("name: x\ndependencies: [python\n", 422, "refuse/env.yml:3"),
    ("dependencies:\n  - python\n  - 'num$py'\n", 422, "not a valid conda match spec"),
    ("channels: [evil]\ndependencies: [python]\n", 422, "not allowed"),
    ("- just a list\n", 422, "top level must be a mapping"),
    (BOMB, 422, "YAML nodes"),
    ("dependencies: [python]\n" + "#" * (2 << 20), 413, "limit"),
    ("name: ../../etc\ndependencies: [python]\n", 422, "must match"),
], ids=["malformed", "bad-spec", "channel", "not-mapping", "alias-bomb", "huge", "dotdot"])
def test_bad_specs(service: Service, body: str, status: int, words: str) -> None:
    token = service.token("refuse=developer")
    with api(service, token) as c:
        r = c.post("/api/v1/environments/refuse/env/versions", content=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    _nothing_changed(service, token)


@pytest.mark.parametrize("path", [
    "/api/v1/environments/refuse/..%2f..%2fetc/versions",
    "/api/v1/environments/refuse/bad%20name/versions",
    "/api/v1/environments/-x/env/versions",
    "/api/v1/environments/refuse/" + "n" * 80 + "/versions",
])
def test_bad_names(service: Service, path: str) -> None:
    token = service.token("*=admin")
    with api(service, token) as c:
        r = c.post(path, content="dependencies: [python]\n")
    assert r.status_code in (404, 422), r.text
    _nothing_changed(service, token)


def test_bad_locks(service: Service, channel: Path, tmp_path: Path) -> None:
    import subprocess

    from tests.servers import ENVYARD

    token = service.token("refuse=developer")
    env = tmp_path / "env.yml"
    env.write_text("dependencies: [python=3.11, toolz]\n")
    lock_path = tmp_path / "conda-lock.yml"
    subprocess.run([ENVYARD, "lock", str(env), "-c", str(channel), "-o", str(lock_path), "-q",
                    "--home", str(tmp_path / "h")], check=True, timeout=120)
    good = read_lock(lock_path)

    def variant(change) -> str:  # type: ignore[no-untyped-def]
        lock = good.copy()
        change(lock)
        out = tmp_path / "variant.yml"
        write_lock(lock, out)
        return out.read_text()

    def no_sha(lock) -> None:  # type: ignore[no-untyped-def]
        lock.package[0].hash.sha256 = None

    def foreign(lock) -> None:  # type: ignore[no-untyped-def]
        lock.package[0].url = "file:///etc/passwd"

    def other_platform(lock) -> None:  # type: ignore[no-untyped-def]
        lock.metadata.platforms = ["osx-arm64"]
        for p in lock.package:
            p.platform = "osx-arm64"

    cases = [("version: 9\n", "unsupported lock version"), ("{}", "unsupported"),
             (variant(no_sha), "no sha256"), (variant(foreign), "not under a channel"),
             (variant(other_platform), "no packages for linux-64")]
    with api(service, token) as c:
        for body, words in cases:
            r = c.post("/api/v1/environments/refuse/env/locks", content=body)
            assert r.status_code == 422, r.text
            assert words in r.json()["detail"]
    _nothing_changed(service, token)


def test_tampered_sha256_fails_the_version_and_publishes_nothing(
        service: Service, channel: Path, tmp_path: Path) -> None:
    import subprocess

    from tests.servers import ENVYARD

    token = service.token("tamper=developer")
    env = tmp_path / "env.yml"
    env.write_text("dependencies: [python=3.11, pyyaml]\n")
    lock_path = tmp_path / "conda-lock.yml"
    subprocess.run([ENVYARD, "lock", str(env), "-c", str(channel), "-o", str(lock_path), "-q",
                    "--home", str(tmp_path / "h")], check=True, timeout=120)
    lock = read_lock(lock_path)
    next(p for p in lock.package if p.name == "pyyaml").hash.sha256 = "0" * 64
    write_lock(lock, lock_path)
    with api(service, token) as c:
        r = c.post("/api/v1/environments/tamper/env/locks", content=lock_path.read_text())
        v = wait_ready(c, "tamper/env", r.json()["version"])
    assert v["state"] == "failed" and "sha256 mismatch" in v["error"]
    assert not (service.root / "envs" / "tamper" / "env").exists()


def test_unsatisfiable_spec_fails_with_the_conflict(service: Service) -> None:
    token = service.token("unsat=developer")
    with api(service, token) as c:
        r = c.post("/api/v1/environments/unsat/env/versions",
                   content="dependencies: [python=3.11, dask=2025.12.0, distributed=2026.1.2]\n")
        v = wait_ready(c, "unsat/env", r.json()["version"])
    assert v["state"] == "failed" and "cannot be satisfied" in v["error"]
    assert v["current"] is False


def test_tokens(service: Service, dev_token: str) -> None:
    other = service.token("other=developer")
    expired = service.token("team=admin", expires_in_days=1 / 86400)  # one second
    viewer = service.token("team=viewer")
    with api(service, dev_token) as c:
        assert c.post("/api/v1/environments/team/auth/versions",
                      content="dependencies: [python=3.11]\n").status_code == 202
    with api(service, other) as c:
        r = c.get("/api/v1/environments/team/auth")
        assert r.status_code == 403 and "viewer role on namespace 'team'" in r.json()["detail"]
        r = c.post("/api/v1/environments/team/auth/versions", content="dependencies: [x]\n")
        assert r.status_code == 403
        assert [n["name"] for n in c.get("/api/v1/namespaces").json()] in ([], ["other"])
    with api(service, viewer) as c:
        assert c.get("/api/v1/environments/team/auth").status_code == 200
        r = c.post("/api/v1/environments/team/auth/versions", content="dependencies: [x]\n")
        assert r.status_code == 403 and "developer role" in r.json()["detail"]
    time.sleep(1.1)
    with api(service, expired) as c:
        r = c.get("/api/v1/environments/team/auth")
        assert r.status_code == 401 and "expired" in r.json()["detail"]
    with api(service, None) as c:
        r = c.get("/api/v1/environments/team/auth")
        assert r.status_code == 401 and "missing token" in r.json()["detail"]
    with api(service, "ey_forged") as c:
        assert c.get("/api/v1/namespaces").json()["detail"] == "unknown token"


def test_cancel(service: Service, dev_token: str) -> None:
    with api(service, dev_token) as c:
        n = c.post("/api/v1/environments/team/cancelled/versions",
                   content="dependencies: [python=3.11, dask, distributed, numpy, pandas]\n"
                   ).json()["version"]
        r = c.post(f"/api/v1/environments/team/cancelled/versions/{n}/cancel")
        assert r.status_code == 200 and r.json()["state"] in ("cancelled", "cancelling")
        v = wait_ready(c, "team/cancelled", n)
        assert v["state"] == "cancelled" and v["current"] is False
        again = c.post(f"/api/v1/environments/team/cancelled/versions/{n}/cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
        assert c.post("/api/v1/environments/team/cancelled/versions/99/cancel"
                      ).status_code == 404
