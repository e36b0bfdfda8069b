"""Channels over HTTP, monolithic and sharded (CEP 16): the same lock, and with shards only
the package names a solve needs are fetched."""

from __future__ import annotations

import shutil
from pathlib import Path

from envyard.builder.demo.synthetic import synthetic_channel
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.spec import parse_spec
from tests.servers import serve_directory
from tests.sharded_channel import write_shards

SPEC = "dependencies: [python 3.11.*, pkg00420, pkg00300]\n"


def test_a_sharded_channel_locks_like_its_repodata_json(tmp_path: Path) -> None:
    mono = synthetic_channel(tmp_path / "mono", records=20_000)
    sharded = tmp_path / "sharded"
    shutil.copytree(mono, sharded)
    shards = write_shards(sharded)
    for sub in ("linux-64", "noarch"):
        (sharded / sub / "repodata.json").unlink()  # only shards: a solve must use them
    locks = {}
    for name, root in (("mono", mono), ("sharded", sharded)):
        with serve_directory(root) as (url, requested):
            locks[name] = lock_env(parse_spec(SPEC), LockOptions(
                channels=[url], platforms=["linux-64"], cache_dir=tmp_path / f"cache-{name}"))
        if name == "sharded":
            fetched = [p for p in requested if "/shards/" in p]
            assert 0 < len(fetched) < shards / 2  # what the solve reaches, not everything
    versions = [{(p.name, p.version, p.url.rsplit("/", 1)[1]) for p in lock.package}
                for lock in locks.values()]
    assert versions[0] == versions[1] and len(versions[0]) > 3
