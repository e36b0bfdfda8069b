"""Pushed locks and submitted specs, as an attacker writes them: refused at the door with
a message that names the package, never a path or the hash of a file nobody asked for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import msgspec
import pytest

from envyard.builder.lock import LockedPackage, Lockfile, dump_lock
from tests.servers import Service
from tests.service.conftest import api


def _with(lock: Lockfile, **changes: object) -> Lockfile:
    """``lock`` with toolz's entry changed."""
    out = lock.copy()
    i = next(i for i, p in enumerate(out.package) if p.name == "toolz")
    out.package[i] = msgspec.structs.replace(out.package[i], **changes)
    return out


def _push(c: httpx.Client, lock: Lockfile, env: str = "atk/env") -> httpx.Response:
    return c.post(f"/api/v1/environments/{env}/locks", content=dump_lock(lock))


def test_a_pushed_lock_cannot_read_outside_the_channel(svc: Service, small_lock: Lockfile,
                                                       channel: Path) -> None:
    token = svc.token("atk=developer")
    db = svc.root / "envyard.db"
    secret_sha = hashlib.sha256(db.read_bytes()).hexdigest()  # the attacker's best guess
    up = "/".join([".."] * (len(channel.parts) + 1))
    base = f"{channel.as_uri()}/linux-64"
    urls = [f"{base}/{up}{db}", f"{base}/{up.replace('..', '%2e%2e')}{db}",
            f"{base}/..%2f..%2f..%2fetc%2fpasswd", "file:///etc/passwd",
            f"{base}/../../{channel.name}-evil/linux-64/toolz-1.2.0-pyhd8ed1ab_0.conda",
            "http://169.254.169.254/latest/meta-data/toolz-1-0.conda"]
    with api(svc, token) as c:
        for url in urls:
            r = _push(c, _with(small_lock, url=url, hash=msgspec.structs.replace(
                small_lock.package[0].hash, sha256=secret_sha)))
            assert r.status_code == 422, (url, r.text)
            detail = r.json()["detail"]
            assert detail.startswith("toolz: its URL"), detail
            assert str(svc.root) not in detail and secret_sha not in detail
            assert "envyard.db" not in detail and "passwd" not in detail
        assert c.get("/api/v1/namespaces/atk").status_code == 404  # nothing was stored
    # the database is whole and shared: an outside writer and the service both still work
    other = svc.token("atk=developer")
    with api(svc, other) as c:
        r = _push(c, small_lock)
        assert r.status_code == 202, r.text
    assert not any((svc.root / "pkgs").glob("envyard*"))


@pytest.mark.parametrize("change,words", [
    (lambda lk: _with(lk, hash=msgspec.structs.replace(lk.package[0].hash, sha256="xyz")),
     "not 64 lower-case hex"),
    (lambda lk: _with(lk, hash=msgspec.structs.replace(lk.package[0].hash,
                                                         sha256="A" * 64)),
     "not 64 lower-case hex"),
    (lambda lk: msgspec.structs.replace(lk, package=[
        msgspec.structs.replace(p, platform="osx-arm64") for p in lk.package]),
     "no conda packages for it"),
    (lambda lk: msgspec.structs.replace(lk, package=[*lk.package, _other_toolz(lk)]),
     "listed twice for linux-64 with different files"),
], ids=["not-hex", "upper-case", "empty-platform", "duplicate"])
def test_a_lock_that_cannot_build_is_refused_at_push(svc: Service, small_lock: Lockfile,
                                                     change: object, words: str) -> None:
    """Before: a lock naming linux-64 with no packages for it became a *ready*, empty
    environment, and a malformed sha256 failed only at build time."""
    token = svc.token("atk2=developer")
    with api(svc, token) as c:
        r = _push(c, change(small_lock), env="atk2/env")  # type: ignore[operator]
        assert r.status_code == 422, r.text
        assert words in r.json()["detail"]
        assert c.get("/api/v1/namespaces/atk2").status_code == 404


def _other_toolz(lock: Lockfile) -> LockedPackage:
    toolz = next(p for p in lock.package if p.name == "toolz")
    return msgspec.structs.replace(toolz, url=toolz.url.replace("toolz-", "toolz2-"))


def test_a_lock_naming_a_channel_outside_the_allow_list_is_refused(
        svc: Service, small_lock: Lockfile) -> None:
    lock = small_lock.copy()
    lock.metadata.channels[0].url = "file:///ok/%2e%2e/%2e%2e/evil"
    with api(svc, svc.token("atk3=developer")) as c:
        r = _push(c, lock, env="atk3/env")
    assert r.status_code == 422 and "not allowed here" in r.json()["detail"]


@pytest.mark.parametrize("spec,words", [
    ("channels: ['file:///ok/%2e%2e/%2e%2e/evil']\ndependencies: [python]\n",
     "dot segment"),
    ("dependencies: [python]\npip-repositories: ['http://169.254.169.254/simple']\n",
     "'pip-repositories' is not accepted"),
    ("dependencies: " + "[" * 500 + "]" * 500 + "\n", "nested more than 32 levels"),
    ("dependencies: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 32 levels"),
], ids=["encoded-dot-channel", "pip-repositories", "nested-500", "nested-100000"])
def test_hostile_specs_are_a_clear_422(svc: Service, spec: str, words: str) -> None:
    """Before: 500 levels answered 500 and logged a 164 KB traceback per request;
    100,000 levels (200 KB) overflowed the C stack and killed the service."""
    log = svc.root.parent / f"serve-{svc.port}.log"
    before = log.stat().st_size
    with api(svc, svc.token("atk4=developer")) as c:
        r = c.post("/api/v1/environments/atk4/env/versions", content=spec)
        assert r.status_code == 422, r.text[:300]
        assert words in r.json()["detail"]
        assert c.get("/healthz").status_code == 200  # still serving
    assert "Traceback" not in log.read_text()[before:]


def test_a_pushed_lock_fetches_only_under_its_allowed_channels(
        small_lock: Lockfile, channel: Path, tmp_path: Path) -> None:
    """A pushed lock may fetch from its channels only if the allow-list admits them, and
    only under them; before (with no service channels), it could fetch anything."""
    from tests.service.conftest import wait_ready

    outside = tmp_path / "elsewhere" / "linux-64" / "toolz-1.2.0-pyhd8ed1ab_0.conda"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(b"not toolz")
    svc = Service(tmp_path / "volume", channel, extra_env={
        "ENVYARD_ALLOWED_CHANNELS": f'["{channel.as_uri()}"]'})
    svc.root.mkdir()
    svc.start()
    try:
        with api(svc, svc.token("own=developer")) as c:
            r = _push(c, _with(small_lock, url=outside.as_uri(), hash=msgspec.structs.replace(
                small_lock.package[0].hash,
                sha256=hashlib.sha256(b"not toolz").hexdigest())), env="own/env")
            assert r.status_code == 422 and "not under a channel" in r.json()["detail"]
            r = _push(c, small_lock, env="own/env")  # from the allowed channel: builds
            assert r.status_code == 202, r.text
            assert wait_ready(c, "own/env", r.json()["version"])["state"] == "ready"
    finally:
        svc.stop()


@pytest.mark.parametrize("changes", [{"version": "0.0.1"}, {"name": "distributed"},
                                     {"build": "pyh_other_0"}])
def test_a_lock_that_names_its_package_wrongly_is_refused(svc: Service, small_lock: Lockfile,
                                                          changes: dict[str, str]) -> None:
    """Found by an attack on the web UI: a pushed lock whose name or version lied (the
    sha256 was the real archive's) became ready with a Dask verdict, a package index and a
    diff about packages it did not install ("Dask ok" for a distributed it relabelled).
    Each archive's own record must now be the package the lock names, also when the
    honest lock was built first (before, its prefix was reused for the relabelled one:
    prefixes were keyed by URL and sha256 only)."""
    from tests.service.conftest import wait_ready

    token = svc.token("atk=developer")
    with api(svc, token) as c:
        r = _push(c, small_lock, "atk/honest")
        assert wait_ready(c, "atk/honest", r.json()["version"])["state"] == "ready"
        r = _push(c, _with(small_lock, **changes), "atk/relabelled")
        assert r.status_code == 202, r.text
        v = wait_ready(c, "atk/relabelled", r.json()["version"])
    assert v["state"] == "failed", v
    assert "the lock names its package wrongly" in v["error"] and "toolz" in v["error"]
    assert v["stopped_in"] == "install"
