"""`envyard serve` with its artifacts in fake-gcs-server and in moto's S3: builds upload,
downloads redirect to signed URLs (and the CLI follows them), GC deletes from the bucket."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard

from envyard.service.settings import Settings
from envyard.service.storage import open_store
from tests import objectstores
from tests.servers import ENVYARD, Service
from tests.service.conftest import api, build, wait_ready


@pytest.fixture(scope="module", params=["gcs", "s3"])
def stored(request: pytest.FixtureRequest, channel: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Settings]]:
    work = tmp_path_factory.mktemp(f"svc-{request.param}")
    server = objectstores.start(request.param, work)
    env = server.settings()
    svc = Service(work / "volume", channel, "", env)
    svc.root.mkdir()
    try:
        svc.start()
        yield svc, Settings(root=svc.root, storage=server.storage())
    finally:
        svc.stop()
        server.stop()


def test_artifacts_live_in_the_bucket(stored: tuple[Service, Settings]) -> None:
    svc, settings = stored
    store = open_store(settings)
    with api(svc, svc.token("obj=admin")) as c:
        v = build(c, "obj/nb", "toolz")
        keys = set(store.list_keys())
        base = f"builds/obj/nb/{v['number']}/"
        assert {base + "environment.yml", base + "conda-lock.yml", base + "build.log",
                f"packs/{v['fingerprint']}.tar.zst"} <= keys
        assert not list((svc.root / "packs").glob("*.tar.zst"))  # not kept twice
        # the pack: a redirect to a signed URL that needs no token, a real conda-pack archive
        r = c.get(f"/api/v1/environments/obj/nb/versions/{v['number']}/pack")
        assert r.status_code == 307
        signed = r.headers["location"]
        assert signed.startswith(settings.storage.endpoint or "") and "Signature" in signed
        data = httpx.get(signed, timeout=30).content
        assert len(data) == v["pack_bytes"]
        assert store.stat(f"packs/{v['fingerprint']}.tar.zst").sha256 == \
            hashlib.sha256(data).hexdigest()  # type: ignore[union-attr]
        with tarfile.open(fileobj=io.BytesIO(zstandard.decompress(
                data, max_output_size=1 << 31))) as tar:
            names = tar.getnames()
        assert "bin/conda-unpack" in names
        # lock, spec and log come from the bucket too, and say what the database says
        lock = c.get(f"/api/v1/environments/obj/nb/versions/{v['number']}/lock",
                     follow_redirects=True)
        assert lock.status_code == 200 and "toolz" in lock.text
        log = c.get(f"/api/v1/environments/obj/nb/versions/{v['number']}/log",
                    follow_redirects=True)
        assert "uploading the pack" in log.text and "ready" in log.text


def test_cli_download_follows_the_redirect(stored: tuple[Service, Settings],
                                           tmp_path: Path) -> None:
    svc, _ = stored
    token = svc.token("cli=admin")
    with api(svc, token) as c:
        v = build(c, "cli/nb", "pyyaml")
    done = subprocess.run([ENVYARD, "show", "cli/nb", "--server", svc.url, "--token", token],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {token}"},
                      follow_redirects=True, timeout=60) as c:
        r = c.get(f"/api/v1/environments/cli/nb/versions/{v['number']}/lock")
    assert "pyyaml" in r.text and r.history and r.history[0].status_code == 307
    assert "authorization" not in {k.lower() for k in r.request.headers}  # not leaked


def test_gc_deletes_from_the_bucket(stored: tuple[Service, Settings]) -> None:
    svc, settings = stored
    store = open_store(settings)
    with api(svc, svc.token("gc=admin", "*=admin")) as c:
        old = build(c, "gc/nb", "msgpack-python")
        failed = c.post("/api/v1/environments/gc/nb/versions",
                        content="dependencies: [python=3.11, no-such-package]\n").json()
        assert wait_ready(c, "gc/nb", failed["version"])["state"] == "failed"
        failed_log = f"builds/gc/nb/{failed['version']}/build.log"
        assert store.stat(failed_log) is not None  # a failed build's log is stored too
        new = build(c, "gc/nb", "markupsafe")
        old_pack = f"packs/{old['fingerprint']}.tar.zst"
        assert store.stat(old_pack) is not None
        c.put("/api/v1/retention/gc/nb", json={"keep_last": 1, "keep_days": 0,
                                               "failed_log_days": 0})
        r = c.post("/api/v1/gc")
        assert r.status_code == 200, r.text
        assert f"gc/nb/{old['number']}" in r.json()["deleted"]
        assert store.stat(old_pack) is None and store.stat(failed_log) is None
        assert store.stat(f"packs/{new['fingerprint']}.tar.zst") is not None
        assert c.get(f"/api/v1/environments/gc/nb/versions/{old['number']}/pack"
                     ).status_code == 404
