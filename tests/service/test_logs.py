"""The service's log records name the version they are about, as text or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers import Service
from tests.service.conftest import api, build, wait_ready


def test_json_log_lines_carry_the_version(channel: Path, tmp_path: Path) -> None:
    """Before: no format, no time, no version: a build's failure was not logged at all."""
    root = tmp_path / "volume"
    root.mkdir()
    svc = Service(root, channel, extra_env={"ENVYARD_LOG_FORMAT": "json"}).start()
    try:
        token = svc.token("team=developer")
        with api(svc, token) as c:
            build(c, "team/logged", "toolz")
            n = c.post("/api/v1/environments/team/broken/versions",
                       content="dependencies: [python=3.11, no-such-package]\n"
                       ).json()["version"]
            assert wait_ready(c, "team/broken", n)["state"] == "failed"
    finally:
        svc.stop()
    records = []
    for line in svc.log.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    by_version = {r["version"]: r for r in records if r["logger"] == "envyard"}
    ready, failed = by_version["team/logged/1"], by_version["team/broken/1"]
    assert ready["level"] == "info" and ready["message"].startswith("ready: ")
    assert failed["message"].startswith("failed: ") and "no-such-package" in failed["message"]
    assert all({"time", "level", "logger", "message", "version"} <= set(r) for r in records)
