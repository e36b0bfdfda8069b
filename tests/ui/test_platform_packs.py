"""The version page offers a pack for every platform the lock covers, in chromium: both
platforms of a linux-64 + osx-arm64 lock are linked, and the osx-arm64 link downloads a
pack of that platform's locked packages."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envyard.builder.lock import dump_lock
from tests.browser import assert_accessible, shot, watch
from tests.platform_channel import SECOND, lock_both, second_platform_channel
from tests.servers import Service
from tests.service.conftest import api, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def site(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ui-platforms")
    ch = second_platform_channel(base / "channel", channel)
    lock = lock_both(ch, base / "cache")
    svc = Service(base / "volume", ch, "",
                  {"ENVYARD_ALLOWED_CHANNELS": '["conda-forge", "file://*", "/*"]'})
    svc.root.mkdir()
    svc.start()
    token = svc.token("alice=developer", name="alice")
    with api(svc, token) as c:
        r = c.post("/api/v1/environments/alice/cross/locks", content=dump_lock(lock))
        assert r.status_code == 202, r.text
        assert wait_ready(c, "alice/cross", r.json()["version"])["state"] == "ready"
    yield {"svc": svc, "token": token, "lock": lock}
    svc.stop()


def test_the_version_page_links_a_pack_per_locked_platform(site: dict[str, Any],
                                                           browser: Any) -> None:
    # (site before browser: the channel is indexed with asyncio before Playwright's loop)
    svc: Service = site["svc"]
    page = browser.new_context(accept_downloads=True).new_page()
    w = watch(page)
    page.goto(f"{svc.url}/ui/")
    page.fill("#token", site["token"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{svc.url}/ui/")
    page.goto(f"{svc.url}/ui/#/env/alice/cross/v/1")
    page.locator("h1").filter(has_text="alice/cross v1").wait_for()
    links = page.locator("#platform-pack-links a")
    links.first.wait_for()
    assert links.evaluate_all("els => els.map(e => e.dataset.platform)") == \
        ["linux-64", SECOND]
    assert "made on first download" in page.locator("#platform-pack-links").inner_text()
    shot(page, "version-platform-packs")
    assert_accessible(page, "/env/alice/cross/v/1")
    with page.expect_download() as download:
        page.locator(f'#platform-pack-links a[data-platform="{SECOND}"]').click()
    assert download.value.suggested_filename == f"alice-cross-1-{SECOND}.tar"
    with tarfile.open(download.value.path()) as tar:
        got = {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
               for m in tar.getmembers() if m.name.endswith(".conda")}
    assert got == {f"channel/{p.url.rsplit('/', 2)[-2]}/{p.filename}": p.hash.sha256
                   for p in site["lock"].for_platform(SECOND, "conda")}
    w.check()
