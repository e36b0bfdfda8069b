"""Sharded repodata (CEP 16) for a channel that has ``repodata.json``: over HTTP
(``tests.servers.serve_directory``), as a hub fetches its channels, rattler reads the shards
(one small file per package name, only those a solve needs) instead of the whole index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import msgpack
import zstandard


def _packed(record: dict[str, object]) -> dict[str, object]:
    out = dict(record)
    for key in ("sha256", "md5"):
        if isinstance(out.get(key), str):
            out[key] = bytes.fromhex(out[key])  # type: ignore[arg-type]
    return out


def write_shards(channel: Path) -> int:
    """Write ``repodata_shards.msgpack.zst`` and ``shards/`` beside every subdir's
    ``repodata.json``; return the number of shards written."""
    compress = zstandard.ZstdCompressor(level=3).compress
    count = 0
    for repodata in sorted(channel.glob("*/repodata.json")):
        subdir = repodata.parent
        data = json.loads(repodata.read_text())
        by_name: dict[str, dict[str, dict[str, object]]] = {}
        for key in ("packages", "packages.conda"):
            for fn, record in data.get(key, {}).items():
                shard = by_name.setdefault(str(record["name"]),
                                           {"packages": {}, "packages.conda": {}})
                shard[key][fn] = _packed(record)
        (subdir / "shards").mkdir(exist_ok=True)
        index: dict[str, bytes] = {}
        for name, shard in by_name.items():
            blob = compress(msgpack.packb({**shard, "removed": []}))
            digest = hashlib.sha256(blob).digest()
            (subdir / "shards" / f"{digest.hex()}.msgpack.zst").write_bytes(blob)
            index[name] = digest
        info = {"base_url": "./", "shards_base_url": "./shards/", "subdir": subdir.name,
                "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        (subdir / "repodata_shards.msgpack.zst").write_bytes(
            compress(msgpack.packb({"version": 1, "info": info, "shards": index})))
        count += len(index)
    return count
