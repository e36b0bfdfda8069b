"""A hub user's whole journey through the web UI, in chromium, against a real
`envyard serve --hub` (JupyterHub, its proxy, OAuth, JupyterLab in the user's server):
log in at the hub, open envyard from the Services menu, make `alice/geo` from YAML,
preview it, build it and watch the log reach ready, find its kernel in JupyterLab's
launcher; add one package (the preview shows exactly that), build, roll back, hold, delete
another environment; never see bob's; a build that cannot be solved ends failed with the
solver's words at the top."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser import Watched, assert_accessible, shot, watch
from tests.hub.conftest import hub  # noqa: F401  (the fixture: `envyard serve --hub`)
from tests.servers import Service
from tests.service.conftest import api, build, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

GEO = "channels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - ipykernel\n  - toolz\n"


def ready_page(page: Any) -> None:
    page.locator("main:not([aria-busy])").wait_for(timeout=30_000)


def log_in_at_the_hub(page: Any, hub_url: str, user: str) -> None:
    page.goto(f"{hub_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", "pw")
    with page.expect_navigation():
        page.click("#login_submit")
    assert "/hub/login" not in page.url, page.url


def added_packages(page: Any) -> list[str]:
    rows = page.locator("#preview .diff tbody tr")
    return sorted(r.locator("td").first.inner_text() for r in rows.all()
                  if r.locator("td").nth(1).inner_text().startswith("added"))


def watch_build_to_the_end(page: Any, state: str = "ready") -> str:
    """On a build page: the state badge reaches ``state``; the log as the page shows it."""
    page.wait_for_url(re.compile(r".*#/env/.+/v/\d+$"))
    page.locator("h1 .badge").filter(has_text=state).wait_for(timeout=120_000)
    return str(page.locator("#log").inner_text())


def test_alices_journey(hub: Service, browser: Any) -> None:  # noqa: F811
    hub_url: str = hub.hub_url  # type: ignore[attr-defined]
    ui = f"{hub_url}/services/envyard/ui/"
    admin = hub.token("*=admin", name="operator")
    with api(hub, admin) as c:  # bob's environment, and one alice will delete
        build(c, "bob/private", "toolz")
        build(c, "alice/scratch", "toolz")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    w: Watched = watch(page)

    # in through the hub: its Services menu, the OAuth flow, the UI
    log_in_at_the_hub(page, hub_url, "alice")
    page.goto(f"{hub_url}/hub/home")
    page.get_by_role("button", name="Services").click()
    page.get_by_role("link", name="envyard").click()
    page.wait_for_url(re.compile("^" + re.escape(ui)))
    ready_page(page)
    assert page.locator("#who").inner_text() == "hub user 'alice'"
    listed = page.locator("tbody tr td:first-child a").all_inner_texts()
    assert listed == ["alice/scratch"]  # bob's is not there
    assert "bob" not in page.inner_text("nav")
    shot(page, "journey-environments", docs=True)

    # a new environment from YAML: preview, then build exactly that
    page.get_by_role("link", name="New environment").first.click()
    ready_page(page)
    page.select_option("#namespace", "alice")
    page.fill("#name", "geo")
    page.fill("#spec", GEO)
    page.fill("#message", "a geo notebook")
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview [data-summary]").wait_for(timeout=60_000)
    added = added_packages(page)
    assert {"python", "ipykernel", "toolz"} <= set(added), added
    shot(page, "journey-new-preview")
    assert_accessible(page, "new environment, previewed")
    page.get_by_role("button", name="Build", exact=True).click()
    log = watch_build_to_the_end(page)
    assert "[installing]" in log and log.rstrip().endswith("ready")
    stages = page.locator("ol.stages li")
    assert [stages.nth(i).get_attribute("class") for i in range(stages.count())] == [
        "done", "skipped", "done", "done", "done"]  # a preview's lock is not solved again
    shot(page, "journey-build", docs=True)

    # the kernel in her JupyterLab launcher
    lab = context.new_page()  # (JupyterLab's own console is not envyard's: not watched)
    lab.goto(f"{hub_url}/hub/spawn")
    lab.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=120_000)
    card = lab.locator(".jp-Launcher .jp-LauncherCard[data-category=Notebook]",
                       has_text="alice/geo (v1)")
    card.wait_for(timeout=90_000)
    assert lab.locator(".jp-LauncherCard", has_text="bob/private").count() == 0
    shot(lab, "journey-jupyterlab-launcher")
    lab.close()

    # add one package: the preview shows exactly that addition
    page.goto(ui + "#/env/alice/geo/edit")
    ready_page(page)
    page.fill("#pkg-search", "pyya")
    page.get_by_role("button", name="Add pyyaml").click()
    assert "  - pyyaml" in page.input_value("#spec")
    assert page.get_by_role("checkbox", name=re.compile("Keep everything else")).is_checked()
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview [data-summary]").wait_for(timeout=60_000)
    assert page.locator("#preview [data-summary]").inner_text() == \
        "1 added, 0 removed, 0 changed."
    assert added_packages(page) == ["pyyaml"]
    shot(page, "journey-edit-preview", docs=True)
    page.fill("#message", "add pyyaml")
    page.get_by_role("button", name="Build", exact=True).click()
    watch_build_to_the_end(page)

    # history: roll back to v1, hold v2, compare them
    page.goto(ui + "#/env/alice/geo")
    ready_page(page)
    rows = page.locator("table").first.locator("tbody tr")
    assert rows.count() == 2 and "v2 (current)" in rows.first.inner_text()
    assert "add pyyaml" in rows.first.inner_text() and "hub user 'alice'" in rows.first.inner_text()
    rows.nth(1).get_by_role("button", name="Roll back to this").click()
    page.locator("tr.current", has_text="v1 (current)").wait_for()
    rows = page.locator("table").first.locator("tbody tr")
    rows.first.get_by_role("button", name="Hold", exact=True).click()
    page.locator("table").first.locator("tbody tr").first.get_by_role(
        "button", name="Unhold").wait_for()
    page.get_by_role("button", name="Compare").click()
    page.locator("#diff-out [data-summary]").wait_for()
    assert page.locator("#diff-out [data-summary]").inner_text() == \
        "1 added, 0 removed, 0 changed."
    shot(page, "journey-environment", docs=True)
    assert_accessible(page, "environment page")
    with api(hub, admin) as c:
        env = c.get("/api/v1/environments/alice/geo").json()
    assert env["current_version"] == 1
    assert [v["held"] for v in env["versions"]] == [False, True]
    assert env["kernel_display_name"] == "alice/geo (v1)"

    # delete another environment: the confirmation says what will be collected
    page.goto(ui + "#/env/alice/scratch")
    ready_page(page)
    page.get_by_role("button", name="Delete environment…").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert re.search(r"removes 1 version and frees \d", dialog.inner_text())
    shot(page, "journey-delete-confirmation")
    dialog.get_by_role("button", name="Delete").click()
    page.wait_for_url(re.compile(r".*#/$"))
    ready_page(page)
    assert page.locator("tbody tr td:first-child a").all_inner_texts() == ["alice/geo"]

    # the namespace page: usage, what GC would collect, the rules, the members
    page.goto(ui + "#/ns/alice")
    ready_page(page)
    assert "scratch" in page.inner_text("main") and "the environment was deleted" in \
        page.inner_text("main")
    assert "hub user 'alice'" in page.inner_text("main")
    shot(page, "journey-namespace", docs=True)

    # a build that cannot be solved: failed, with the solver's message at the top
    page.goto(ui + "#/new")
    ready_page(page)
    page.fill("#name", "broken")
    page.fill("#spec", "dependencies:\n  - python=3.11\n  - nosuchpackage\n")
    page.get_by_role("button", name="Preview").click()
    error = page.locator("#spec-errors .alert")
    error.wait_for(timeout=60_000)
    assert "Line 3" in error.inner_text() and "nosuchpackage" in error.inner_text()
    assert page.locator(".gutter .bad").inner_text() == "3"
    shot(page, "journey-spec-error", docs=True)
    with api(hub, admin) as c:  # the same spec submitted without a preview (the CLI)
        r = c.post("/api/v1/environments/alice/broken/versions",
                   content="dependencies: [python=3.11, nosuchpackage]\n")
        started = time.monotonic()
        page.goto(ui + f"#/env/alice/broken/v/{r.json()['version']}")
        wait_ready(c, "alice/broken", r.json()["version"])
    watch_build_to_the_end(page, "failed")
    top = page.locator("#build-error")
    assert "nosuchpackage" in top.inner_text() and "cannot be satisfied" in top.inner_text()
    assert page.locator("ol.stages li.failed").count() >= 1
    assert time.monotonic() - started < 60
    shot(page, "journey-build-failed", docs=True)
    w.check()

    # logging out of envyard logs out of the hub too
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/hub/(logout|login).*"))
    context.close()
