"""An `envyard serve` for the attacks (SQLite, the demo channel), and a real lock of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from envyard.builder.lock import Lockfile
from tests.servers import Service


@pytest.fixture(scope="module")
def svc(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("sec") / "volume", channel,
                      extra_env={"ENVYARD_ALLOWED_CHANNELS": f'["{channel.as_uri()}"]'})
    service.root.mkdir()
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def small_lock(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Lockfile:
    """python + toolz from the demo channel, locked for linux-64."""
    from envyard.builder.locker import LockOptions, lock_env
    from envyard.builder.spec import parse_spec

    return lock_env(parse_spec("dependencies: [python=3.11, toolz]\n"),
                    LockOptions(channels=[str(channel)], platforms=["linux-64"],
                                cache_dir=tmp_path_factory.mktemp("lockcache")))
