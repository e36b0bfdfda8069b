"""Every page of the web UI in chromium, outside a hub (an envyard token through the login
form): what each shows, axe-core finding nothing serious, a narrow side panel, the
keyboard, markup a user wrote shown as text, and one namespace never seeing another's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Watched, assert_accessible, fits, shot, watch
from tests.servers import Service
from tests.service.conftest import api, build, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture(scope="module")
def site(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A service with alice's two environments (one failed), shared/base and bob's."""
    svc = Service(tmp_path_factory.mktemp("ui") / "volume", channel)
    svc.root.mkdir()
    svc.start()
    admin = svc.token("*=admin", name="admin")
    with api(svc, admin) as c:
        build(c, "alice/geo", "ipykernel, toolz")
        build(c, "alice/geo", "ipykernel, toolz, pyyaml")
        build(c, "shared/base", "toolz")
        build(c, "bob/secret", "toolz")
        r = c.post("/api/v1/environments/alice/broken/versions",
                   content="dependencies: [python=3.11, nosuchpackage]\n")
        assert wait_ready(c, "alice/broken", r.json()["version"])["state"] == "failed"
        c.put("/api/v1/environments/alice/geo/description", json={"description": XSS})
    yield {"svc": svc, "admin": admin,
           "alice": svc.token("alice=developer", "shared=viewer", name="alice"),
           "bob": svc.token("bob=developer", name="bob")}
    svc.stop()


def login(browser: Any, site: dict[str, Any], who: str, **context: Any) -> Watched:
    page = browser.new_context(**context).new_page()
    watched = watch(page)
    svc: Service = site["svc"]
    page.goto(f"{svc.url}/ui/")
    assert page.url == f"{svc.url}/ui/login"
    page.fill("#token", site[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{svc.url}/ui/")
    page.locator("#who").filter(has_text=who).wait_for()
    return watched


def visit(w: Watched, site: dict[str, Any], route: str, heading: str) -> Any:
    page = w.page
    page.goto(f"{site['svc'].url}/ui/#{route}")
    page.locator("h1").filter(has_text=heading).wait_for()
    page.locator("main:not([aria-busy])").wait_for()
    return page


PAGES = [("/", "Environments", "environments"),
         ("/env/alice/geo", "alice/geo", "environment"),
         ("/env/alice/geo/v/2", "alice/geo v2", "build"),
         ("/env/alice/broken/v/1", "alice/broken v1", "build-failed"),
         ("/env/alice/geo/edit", "Edit alice/geo", "edit"),
         ("/new", "New environment", "new"),
         ("/ns/alice", "Namespace alice", "namespace")]


def test_every_page_shows_its_facts_and_passes_axe(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "alice")
    for route, heading, name in PAGES:
        page = visit(w, site, route, heading)
        shot(page, f"pages-{name}")
        assert_accessible(page, route)
    page = visit(w, site, "/", "Environments")
    rows = page.locator("tbody tr td:first-child a").all_inner_texts()
    assert rows == ["alice/broken", "alice/geo", "shared/base"]
    page = visit(w, site, "/env/alice/geo", "alice/geo")
    history = page.locator("table").first
    assert history.locator("tbody tr").count() == 2
    assert "v2 (current)" in history.locator("tbody tr").first.inner_text()
    kinds = page.locator("#download-links a").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["spec", "lock", "explicit", "environment.yml", "pack"]
    assert page.locator("#kernel-name").inner_text() == "alice-geo"
    page = visit(w, site, "/env/alice/broken/v/1", "alice/broken v1")
    assert "nosuchpackage" in page.locator("#build-error").inner_text()
    assert page.locator("ol.stages li.failed").first.inner_text().startswith("Solving")
    page = visit(w, site, "/ns/alice", "Namespace alice")
    assert page.locator("#gc-summary").inner_text().startswith("Would collect")
    assert "token 'alice'" in page.locator("table").last.inner_text()
    w.check()


def test_admin_page_lists_pins_queue_and_what_if(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "admin")
    page = visit(w, site, "/admin", "Admin")
    assert "Nothing is queued" in page.inner_text("main")
    shot(page, "pages-admin")
    assert_accessible(page, "/admin")
    w.check()
    w = login(browser, site, "alice")
    page = visit(w, site, "/admin", "Admin")
    assert "role on every namespace" in page.inner_text("main")


def test_a_narrow_side_panel_needs_no_sideways_scrolling(browser: Any,
                                                          site: dict[str, Any]) -> None:
    w = login(browser, site, "alice", viewport={"width": 360, "height": 800})
    for route, heading, name in PAGES:
        page = visit(w, site, route, heading)
        assert fits(page), route
        shot(page, f"narrow-{name}")
    w.check()


def test_markup_a_user_wrote_is_shown_as_text(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "alice")
    page = visit(w, site, "/env/alice/geo", "alice/geo")
    assert page.locator("#description").inner_text().startswith("<img src=x")
    assert page.locator("main img, main script").count() == 0
    page = visit(w, site, "/", "Environments")
    assert XSS in page.inner_text("main")
    w.check()  # no dialog opened, no script ran


def test_one_namespace_never_sees_another(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "bob")
    page = visit(w, site, "/", "Environments")
    assert page.locator("tbody tr td:first-child a").all_inner_texts() == ["bob/secret"]
    assert "alice" not in page.inner_text("nav")
    page.goto(f"{site['svc'].url}/ui/#/env/alice/geo")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "alice" in alert.inner_text() and "viewer" in alert.inner_text()
    assert "toolz" not in page.inner_text("main")
    w.check()


def test_the_keyboard_reaches_everything(browser: Any, site: dict[str, Any]) -> None:
    w = login(browser, site, "alice")
    page = visit(w, site, "/env/alice/geo", "alice/geo")
    page.reload()  # a first load: focus starts at the top of the page
    page.locator("main:not([aria-busy]) h1").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    hold = page.locator("table").first.locator("tbody tr").first.get_by_role("button",
                                                                          name="Hold")
    hold.focus()
    page.keyboard.press("Enter")
    unhold = page.locator("table").first.locator("tbody tr").first.get_by_role(
        "button", name="Unhold")
    unhold.wait_for()
    page.locator("#status", has_text="held").wait_for()  # announced, maybe after the row
    unhold.click()
    page.locator("table").first.locator("tbody tr").first.get_by_role(
        "button", name="Hold").wait_for()
    w.check()
