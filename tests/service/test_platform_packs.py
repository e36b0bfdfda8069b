"""A version's pack for each platform its lock covers, through a real `envyard serve`: a
lock for linux-64 and osx-arm64 pushed (and a spec naming both submitted), the osx-arm64
pack downloaded from the API and with the remote CLI, holding exactly that platform's
locked packages; a platform the lock lacks is a 404 naming those it has; a reader of
another namespace gets nothing."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envyard.builder.lock import Lockfile, dump_lock
from tests.platform_channel import SECOND, SPEC, lock_both, second_platform_channel
from tests.servers import ENVYARD, Service
from tests.service.conftest import api, wait_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("platform-packs")
    ch = second_platform_channel(base / "channel", channel)
    lock = lock_both(ch, base / "cache")
    svc = Service(base / "volume", ch, "",
                  {"ENVYARD_ALLOWED_CHANNELS": '["conda-forge", "file://*", "/*"]'})
    svc.root.mkdir()
    svc.start()
    dev = svc.token("team=developer", name="dev")
    with api(svc, dev) as c:
        r = c.post("/api/v1/environments/team/cross/locks", content=dump_lock(lock))
        assert r.status_code == 202, r.text
        v = wait_ready(c, "team/cross", r.json()["version"])
        assert v["state"] == "ready", v["error"]
    yield {"svc": svc, "lock": lock, "channel": ch, "dev": dev, "number": v["number"]}
    svc.stop()


def _packages(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.name.endswith(".conda")}


def _expected(lock: Lockfile) -> dict[str, str]:
    return {f"channel/{p.url.rsplit('/', 2)[-2]}/{p.filename}": p.hash.sha256 or ""
            for p in lock.for_platform(SECOND, "conda")}


def test_a_pushed_locks_other_platform_is_offered_and_downloaded(site: dict[str, Any]) -> None:
    svc: Service = site["svc"]
    path = f"/api/v1/environments/team/cross/versions/{site['number']}"
    with api(svc, site["dev"]) as c:
        listed = c.get(f"{path}/platforms").json()
        assert listed["service_platform"] == "linux-64"
        assert [(p["platform"], p["available"]) for p in listed["platforms"]] == \
            [("linux-64", False), (SECOND, False)]
        r = c.get(f"{path}/packs/{SECOND}")
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"] == \
            f'attachment; filename="team-cross-{site["number"]}-{SECOND}.tar"'
        assert _packages(r.content) == _expected(site["lock"])
        again = c.get(f"{path}/platforms").json()["platforms"][1]
        assert again["available"] and again["bytes"] == len(r.content)
        assert c.get(f"/api/v1/environments/team/cross/versions/current/packs/{SECOND}"
                     ).content == r.content

        missing = c.get(f"{path}/packs/win-64")
        assert missing.status_code == 404
        assert "linux-64, osx-arm64" in missing.json()["detail"]
        assert "win-64" in missing.json()["detail"]
    outsider = svc.token("elsewhere=viewer", name="outsider")
    with api(svc, outsider) as c:
        for route in (f"{path}/platforms", f"{path}/packs/{SECOND}"):
            denied = c.get(route)
            assert denied.status_code in (403, 404), denied.text
            assert b"channel/" not in denied.content


def test_the_remote_cli_lists_the_platforms_and_downloads_a_pack(site: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    svc: Service = site["svc"]
    env = {**os.environ, "ENVYARD_SERVER": svc.url, "ENVYARD_TOKEN": site["dev"]}
    ref = f"team/cross/{site['number']}"
    listed = subprocess.run([ENVYARD, "download-pack", ref], env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["linux-64", SECOND]
    out = tmp_path / "mine.tar"
    done = subprocess.run([ENVYARD, "download-pack", ref, "-p", SECOND, "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _packages(out.read_bytes()) == _expected(site["lock"])
    wrong = subprocess.run([ENVYARD, "download-pack", ref, "-p", "win-64", "-o",
                            str(tmp_path / "no.tar")], env=env, capture_output=True,
                           text=True, timeout=120)
    assert wrong.returncode == 20 and "linux-64, osx-arm64" in wrong.stderr
    assert not (tmp_path / "no.tar").exists()


def test_a_submitted_spec_naming_both_platforms_offers_both_packs(site: dict[str, Any]) -> None:
    svc: Service = site["svc"]
    text = SPEC.replace("dependencies:", f"channels: [{site['channel']}]\ndependencies:")
    with api(svc, site["dev"]) as c:
        r = c.post("/api/v1/environments/team/solved/versions", content=text)
        assert r.status_code == 202, r.text
        v = wait_ready(c, "team/solved", r.json()["version"])
        assert v["state"] == "ready", v["error"]
        path = f"/api/v1/environments/team/solved/versions/{v['number']}"
        platforms = c.get(f"{path}/platforms").json()["platforms"]
        assert {p["platform"] for p in platforms} == {"linux-64", SECOND}
        pack = c.get(f"{path}/packs/{SECOND}")
        assert pack.status_code == 200, pack.text
        lock_text = c.get(f"{path}/lock").text
        from envyard.builder.lock import parse_lock

        assert _packages(pack.content) == _expected(parse_lock(lock_text))


def test_gc_deletes_a_platform_pack_with_the_last_version_of_its_lock(
        site: dict[str, Any]) -> None:
    """Found by review: packs for other platforms stayed on the volume for ever. GC now
    deletes one when no kept version has its lock; one another version still has stays."""
    from envyard.service.platform_packs import platform_pack_key

    svc: Service = site["svc"]
    text = dump_lock(site["lock"])
    other = text + "# the same packages, another lock text\n"
    with api(svc, svc.token("*=admin", name="gc")) as c:
        r = c.post("/api/v1/environments/team/gone/locks", content=other)
        v = wait_ready(c, "team/gone", r.json()["version"])
        assert v["state"] == "ready", v["error"]
        for env, number in (("team/gone", v["number"]), ("team/cross", site["number"])):
            r = c.get(f"/api/v1/environments/{env}/versions/{number}/packs/{SECOND}")
            assert r.status_code == 200, r.text

        def stored(lock_text: str) -> list[Path]:
            name = Path(platform_pack_key(lock_text, SECOND)).name
            return list(svc.root.rglob(name))

        assert stored(other) and stored(text)
        assert c.delete("/api/v1/environments/team/gone").status_code == 200
        assert c.post("/api/v1/gc").status_code == 200
        assert not stored(other)  # its only version was collected
        assert stored(text)  # team/cross still has that lock
