"""Pages in a real browser: Debian's chromium driven by Playwright (never a browser
Playwright downloads; the ``browser`` fixture in tests/conftest.py), axe-core run in the
page, screenshots kept as test artefacts.

A page under test fails its test on any script error or Content-Security-Policy
violation it logs; network errors of answers the test expects (a 422 for a bad spec) are
the page's business and are not counted.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import HOME, REPO

CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags chromium keeps reaching for the internet.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-quic", "--disable-default-apps", "--disable-extensions",
        # even so it looks up Google's hosts: every name but loopback is unknown
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
#: Screenshots of every page the tests visit (not committed); ENVYARD_ARTIFACTS moves them.
ARTIFACTS = Path(os.environ.get("ENVYARD_ARTIFACTS", REPO / "test-artifacts")) / "ui"
#: Set to copy one screenshot per page into docs/ui/ (for the README), as the journey runs.
DOCS_SHOTS = os.environ.get("ENVYARD_DOCS_SCREENSHOTS") == "1"
AXE = HOME / "node" / "node_modules" / "axe-core" / "axe.min.js"


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless, kept off the network."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run tests/setup.sh (apt chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@dataclass
class Watched:
    """A page and what went wrong in it."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert self.errors == [], self.errors


def watch(page: Any) -> Watched:
    watched = Watched(page)

    def console(msg: Any) -> None:
        text = msg.text
        if msg.type == "error" and not text.startswith("Failed to load resource"):
            watched.errors.append(f"console: {text}")
        elif "Content Security Policy" in text:
            watched.errors.append(f"csp: {text}")

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
    page.on("dialog", lambda d: (watched.errors.append(f"dialog: {d.message}"), d.dismiss()))
    return watched


def shot(page: Any, name: str, *, docs: bool = False) -> Path:
    """Screenshot the whole page as a test artefact (and into docs/ui when asked)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    path = ARTIFACTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and DOCS_SHOTS:
        (REPO / "docs" / "ui").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "ui" / f"{safe}.png"), full_page=False)
    return path


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now (WCAG 2.x A
    and AA rules). Injected through the debugger, so the page's CSP stays as it is."""
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run tests/setup.sh (npm axe-core)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: "tag",
            values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def assert_accessible(page: Any, where: str) -> None:
    found = axe_violations(page)
    assert found == [], f"{where}: " + json.dumps(found, indent=1)


def fits(page: Any) -> bool:
    """The page needs no sideways scrolling (tables may scroll inside their own box)."""
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth + 1"))
