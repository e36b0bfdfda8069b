"""What a developer and an admin do in the web UI, in chromium: follow a build's log as it
runs and cancel it; describe an environment, make a version current from its build page,
build an uploaded lock, rebuild; see a malformed spec marked at the line the service
names; set a namespace's quota and retention rules; run the Dask upgrade what-if.

The channel is served over HTTP on 127.0.0.1 so that one package's download can be held:
a build then stays "installing" until the test lets it go."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Watched, assert_accessible, shot, watch
from tests.servers import Service, serve_directory
from tests.service.conftest import api, build, wait_ready
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PINS = {"python": "3.11", "dask": "2025.12.0", "distributed": "2025.12.0"}


@pytest.fixture(scope="module")
def site(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    release = threading.Event()
    release.set()

    def hold(path: str) -> None:  # a build that fetches lz4 waits while release is clear
        if "/lz4-" in path:
            release.wait(120)

    with serve_directory(channel, before=hold) as (url, requested):
        root = tmp_path_factory.mktemp("actions") / "volume"
        root.mkdir()
        svc = Service(root, url, extra_env={"ENVYARD_ALLOWED_CHANNELS": f'["{url}"]'})
        svc.start()
        admin = svc.token("*=admin", name="admin")
        with api(svc, admin) as c:
            assert c.put("/api/v1/dask/pins", json={"versions": PINS}).status_code == 200
            build(c, "alice/act", "ipykernel, toolz")
            build(c, "alice/act", "ipykernel, toolz, pyyaml")
            build(c, "alice/cluster", "dask, distributed")
            build(c, "alice/pinned", "dask=2025.12.0, distributed=2025.12.0")
        try:
            yield {"svc": svc, "admin": admin, "release": release, "requested": requested,
                   "alice": svc.token("alice=developer", name="alice"),
                   "alice-admin": svc.token("alice=admin", name="alice-admin")}
        finally:
            release.set()
            svc.stop()


def login(browser: Any, site: dict[str, Any], who: str) -> Watched:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watched = watch(page)
    page.goto(f"{site['svc'].url}/ui/login")
    page.fill("#token", site[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site['svc'].url}/ui/")
    return watched


def go(page: Any, site: dict[str, Any], route: str) -> None:
    page.goto(f"{site['svc'].url}/ui/#{route}")
    page.locator("main:not([aria-busy]) h1").wait_for()


def test_a_running_build_streams_its_log_and_can_be_cancelled(browser: Any,
                                                               site: dict[str, Any]) -> None:
    w = login(browser, site, "alice")
    page = w.page
    site["release"].clear()
    with api(site["svc"], site["admin"]) as c:
        number = c.post("/api/v1/environments/alice/held/versions",
                        content="dependencies: [python=3.11, lz4]\n").json()["version"]
        wait_until(lambda: any("/lz4-" in p for p in site["requested"]), timeout=120,
                   what="the build to fetch lz4", every=0.05)
        go(page, site, f"/env/alice/held/v/{number}")
        # streamed while it runs: the badge says installing, the log has the stage's lines
        page.locator("h1 .badge").filter(has_text="installing").wait_for()
        page.locator("#log").filter(has_text="[installing]").wait_for()
        assert page.locator("ol.stages li.active").inner_text().startswith("Installing")
        assert "Following the build" in page.locator("#log-note").inner_text()
        shot(page, "actions-build-running")
        assert_accessible(page, "a running build")
        page.get_by_role("button", name="Cancel build").click()
        page.locator("#status").filter(has_text="Cancel requested").wait_for()
        site["release"].set()
        page.locator("h1 .badge").filter(has_text="cancelled").wait_for(timeout=60_000)
        v = wait_ready(c, "alice/held", number)
    assert v["state"] == "cancelled" and v["stopped_in"] == "install"
    assert page.locator("ol.stages li.stopped").first.inner_text().startswith("Installing")
    assert page.get_by_role("button", name="Cancel build").count() == 0
    assert "cancelled" in page.locator("#log").inner_text().splitlines()[-1]
    w.check()


def test_a_developers_actions(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    w = login(browser, site, "alice")
    page = w.page
    go(page, site, "/env/alice/act")
    page.get_by_role("button", name="Edit description").click()
    page.fill("#description-input", "flood models")
    page.get_by_role("button", name="Save").click()
    page.locator("#description").filter(has_text="flood models").wait_for()

    go(page, site, "/env/alice/act/v/1")  # v2 is current: make v1 current from here
    page.get_by_role("button", name="Make current").click()
    page.locator(".notice").filter(has_text="Ready, and current").wait_for()

    lock = tmp_path / "conda-lock.yml"
    with api(site["svc"], site["alice"]) as c:
        lock.write_text(c.get("/api/v1/environments/alice/act/versions/2/lock").text)
    go(page, site, "/env/alice/act/edit")
    page.set_input_files("#lock-file", str(lock))
    page.fill("#message", "the laptop's lock")
    page.get_by_role("button", name="Build this lock").click()
    page.wait_for_url(re.compile(r".*/v/3$"))
    page.locator("h1 .badge").filter(has_text="ready").wait_for(timeout=60_000)
    assert "a pushed conda-lock.yml" in page.inner_text("main")
    assert page.locator("ol.stages li.skipped").first.inner_text().startswith("Solving")

    # a pushed lock has no spec: the editor starts from its pinned environment.yml
    go(page, site, "/env/alice/act/edit")
    assert "pyyaml=" in page.input_value("#spec")
    page.fill("#spec", "dependencies:\n  - python=3.11\n   - bad: [\n")
    page.get_by_role("button", name="Preview").click()
    page.locator("#spec-errors .alert").wait_for()
    assert page.locator("#spec-errors .alert").inner_text().startswith("Line 3:")
    assert page.locator(".gutter .bad").inner_text() == "3"
    assert page.get_by_role("button", name="Build", exact=True).is_disabled()

    go(page, site, "/env/alice/act")  # current is the pushed lock: nothing to solve again
    assert page.get_by_role("button", name="Rebuild current").count() == 0
    v2 = page.locator("table").first.locator("tbody tr").filter(has_text="v2")
    v2.get_by_role("button", name="Rebuild").click()
    page.wait_for_url(re.compile(r".*/v/4$"))
    page.locator("h1 .badge").filter(has_text="ready").wait_for(timeout=60_000)
    w.check()


def test_a_namespace_admin_sets_quota_and_rules(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "alice-admin")
    page = w.page
    go(page, site, "/ns/alice")
    page.fill("#quota-gb", "2")
    page.get_by_role("button", name="Set quota").click()
    page.locator("#usage-text").filter(has_text="of 2.0 GB").wait_for()
    assert page.evaluate("document.activeElement.id") == "quota-gb"
    bar = page.get_by_role("meter")
    assert bar.get_attribute("aria-valuemax") == str(2 * 10**9)
    page.fill("#r-keep_last", "1")
    page.fill("#r-keep_days", "0")  # (a version is kept if any rule keeps it)
    page.get_by_role("button", name="Set rules").click()
    page.locator("dd", has_text="(this namespace)").first.wait_for()
    assert "1 (this namespace)" in page.inner_text("main")
    assert "collect" in page.locator("table").first.inner_text()  # the older ones go
    collected = page.locator("table").first.locator("tbody tr", has_text="collect").count()
    assert page.locator("#gc-summary").inner_text().startswith(f"Would collect {collected} ")
    shot(page, "actions-namespace-admin")
    with api(site["svc"], site["admin"]) as c:
        assert c.get("/api/v1/usage", params={"namespace": "alice"}).json()["alice"][
            "quota_bytes"] == 2 * 10**9
    w.check()


def test_the_upgrade_what_if(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "admin")
    page = w.page
    go(page, site, "/admin")
    assert page.input_value("#pin-dask") == "2025.12.0"  # the pins in force
    page.fill("#pin-dask", "2026.1.2")
    page.fill("#pin-distributed", "2026.1.2")
    page.get_by_role("button", name="Check environments").click()
    page.locator("#whatif-summary").wait_for(timeout=120_000)
    assert page.locator("#whatif-summary").inner_text() == \
        "1 of 2 environments can move to these pins."
    rows = page.locator("#whatif-out tbody tr")
    moves = rows.filter(has_text="alice/cluster").inner_text()
    assert "can move" in moves and "dask 2026.1.2" in moves
    stuck = rows.filter(has_text="alice/pinned").inner_text()
    assert "conflicts" in stuck and "dask" in stuck
    shot(page, "pages-admin", docs=True)
    assert_accessible(page, "admin with a what-if")
    w.check()
