"""Shared fixtures: the demo channel (offline), caches, a loopback package index.

The session ends through ``os._exit`` once rattler has been loaded, with pytest's own exit
status, so rattler's native threads cannot turn a green run into a signal at exit.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envyard.builder.demo.channel import demo_channel
from envyard.builder.demo.simple_index import write_simple_index
from envyard.builder.demo.wheels import ensure_wheels
from tests.servers import Postgres, serve_directory

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
HOME = Path(os.environ.get("ENVYARD_HOME", Path.home() / ".envyard"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # "no tests collected" (5) is not a failure for a selection that matches nothing
    status = 0 if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED else int(exitstatus)
    session.config._envyard_status = status  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if "rattler" in sys.modules:
        # os._exit skips pytest's atexit removal of the base temp dir's lock; without it
        # the next runs keep every old (multi-GB) base temp dir instead of the last three
        factory = getattr(config, "_tmp_path_factory", None)
        basetemp = getattr(factory, "_basetemp", None)
        if basetemp is not None:
            (Path(basetemp) / ".lock").unlink(missing_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "_envyard_status", 1))


@pytest.fixture(scope="session")
def channel() -> Path:
    """The demo channel of real packages (built from cached wheels, never downloaded here)."""
    return demo_channel(HOME, offline=True)


@pytest.fixture(scope="session")
def corpus_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conda-forge's metadata for every package of the real corpus locks (repodata only)."""
    from tests.corpus_channel import corpus_channel

    return corpus_channel(tmp_path_factory.mktemp("corpus-channel"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def pkgs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pkgs")


@pytest.fixture(scope="session")
def pypi_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A simple index of every pinned wheel, served on 127.0.0.1; yields its URL."""
    wheels = list(ensure_wheels(HOME / "wheels", offline=True).values())
    root = write_simple_index(wheels, tmp_path_factory.mktemp("index"))
    with serve_directory(root) as (url, _):
        yield f"{url}/simple"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One throwaway PostgreSQL for the session; each user takes a new database."""
    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture
def envs_dir() -> Path:
    return REPO / "envs"


def copy_env(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright, for one test module (pages get a context each).
    Not for the session: while Playwright's sync API runs, its event loop is the thread's
    running loop, and every later ``asyncio.run`` (a kernel client, a test server) fails."""
    from playwright.sync_api import sync_playwright

    from tests.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
