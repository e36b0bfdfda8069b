"""Preview, minimal-change solves, rebuild and reinstall, through `envyard serve`.

The service's channel starts as the demo channel without its newer dask release, which is
published mid-test: an edit keeps the dask it had (minimal change), a fresh solve takes the
newer one, and a preview made before the release still builds exactly what it showed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from envyard.builder.lock import parse_lock
from envyard.service.db import Database
from envyard.service.models import Preview
from tests.releases import NEWER, OLDER, channel_before_release, publish_release
from tests.servers import ENVYARD, Service
from tests.service.conftest import api, wait_ready

NOTEBOOK = Path(__file__).parents[2] / "envs" / "dask-latest.yml"  # dask unpinned


@pytest.fixture(scope="module")
def released(channel: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Service, Path]]:
    """A service on its own copy of the channel (before the release), and that copy."""
    base = tmp_path_factory.mktemp("preview")
    ours = channel_before_release(channel, base / "channel")
    svc = Service(base / "volume", ours, "",
                  {"ENVYARD_ALLOWED_CHANNELS": '["conda-forge", "file://*", "/*"]'})
    svc.root.mkdir()
    svc.start()
    yield svc, ours
    svc.stop()


@pytest.fixture
def client_for(released: tuple[Service, Path]) -> Iterator[Any]:
    """``client_for("lab=developer")``: a client with a new token of those roles, closed
    when the test ends."""
    made: list[httpx.Client] = []

    def make(*roles: str) -> httpx.Client:
        made.append(api(released[0], released[0].token(*roles)))
        return made[-1]

    yield make
    for client in made:
        client.close()


def _versions(lock_text: str) -> dict[str, str]:
    return {p.name: p.version for p in parse_lock(lock_text).package}


def _submit(client: httpx.Client, env: str, spec: str, **params: str) -> dict[str, Any]:
    r = client.post(f"/api/v1/environments/{env}/versions", content=spec, params=params)
    assert r.status_code == 202, r.text
    v = wait_ready(client, env, r.json()["version"])
    assert v["state"] == "ready", v["error"]
    return v


def _lock(client: httpx.Client, env: str, number: int | str) -> str:
    r = client.get(f"/api/v1/environments/{env}/versions/{number}/lock")
    assert r.status_code == 200, r.text
    return r.text


def test_an_edit_moves_only_what_it_asks_and_a_preview_builds_what_it_showed(
        released: tuple[Service, Path], channel: Path, client_for: Any) -> None:
    ours = released[1]
    client = client_for("lab=developer")
    env, spec = "lab/notebook", NOTEBOOK.read_text()
    first = _submit(client, env, spec)
    assert first["solve"] == "full" and first["base_version"] is None  # nothing to keep
    before = _versions(_lock(client, env, 1))
    assert before["dask"] == OLDER

    edited = spec.replace("  - lz4\n", "  - lz4\n  - pandas\n")
    r = client.post(f"/api/v1/environments/{env}/preview", content=edited)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["solve"] == "minimal" and shown["base_version"] == 1
    added = {c["name"] for c in shown["diff"]["added"]}
    assert "pandas" in added and shown["diff"]["changed"] == []
    assert shown["diff"]["removed"] == []
    assert shown["quota"]["fits"] is True
    preview_lock = client.get(shown["lock_url"])
    assert preview_lock.status_code == 200
    assert added == set(_versions(preview_lock.text)) - set(before)
    assert client.get(f"/api/v1/environments/{env}").json()["current_version"] == 1

    publish_release(channel, ours)  # the channel changes after the preview

    r = client.post(f"/api/v1/environments/{env}/versions",
                    params={"preview": shown["preview"]})
    assert r.status_code == 202, r.text
    built = wait_ready(client, env, r.json()["version"])
    assert built["state"] == "ready", built["error"]
    assert built["preview"] == shown["preview"] and built["solve"] == "minimal"
    assert _lock(client, env, built["number"]) == preview_lock.text  # byte for byte
    assert "solve" not in built["timings"]  # the preview's lock, not a solve of its own
    events = client_for("*=admin").get("/api/v1/audit", params={"namespace": "lab"}).json()
    assert any(e["action"] == "submit" and e["version"] == built["number"]
               and e["detail"].get("preview") == shown["preview"] for e in events["events"])

    # the same edit submitted now, with the newer dask on the channel: dask stays
    minimal = _submit(client, env, edited, message="add pandas")
    assert minimal["solve"] == "minimal" and minimal["base_version"] == built["number"]
    kept = _versions(_lock(client, env, minimal["number"]))
    assert kept["dask"] == kept["distributed"] == OLDER
    # a fresh solve takes what the channel has now
    full = _submit(client, env, edited, update="full")
    assert full["solve"] == "full"
    fresh = _versions(_lock(client, env, full["number"]))
    assert fresh["dask"] == fresh["distributed"] == NEWER
    diff = client.get(f"/api/v1/environments/{env}/versions/{minimal['number']}/diff/current"
                      ).json()
    assert {"dask", "distributed"} <= {c["name"] for c in diff["changed"]}


def test_a_preview_is_its_environments_for_a_while(released: tuple[Service, Path],
                                                    client_for: Any) -> None:
    svc, _ = released
    dev, viewer = client_for("lab=developer"), client_for("lab=viewer")
    spec = "dependencies: [python=3.11, toolz]\n"
    assert viewer.post("/api/v1/environments/lab/small/preview",
                       content=spec).status_code == 403
    r = dev.post("/api/v1/environments/lab/small/preview", content=spec)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["base_version"] is None and shown["solve"] == "full"
    assert {c["name"] for c in shown["diff"]["added"]} >= {"python", "toolz"}
    pid = shown["preview"]
    assert viewer.get(shown["lock_url"]).status_code == 403
    # a preview builds only the environment it was made for
    r = dev.post("/api/v1/environments/lab/other/versions", params={"preview": pid})
    assert r.status_code == 404
    # a preview and a body at once is ambiguous
    r = dev.post("/api/v1/environments/lab/small/versions", params={"preview": pid},
                 content=spec)
    assert r.status_code == 422 and "not both" in r.json()["detail"]
    assert dev.post("/api/v1/environments/lab/small/versions",
                    params={"preview": "no-such-id"}).status_code == 404
    # past its time: a clear 410, nothing queued
    db = Database(f"sqlite:///{svc.root / 'envyard.db'}")
    try:
        with db.session(write=True) as s:
            s.execute(update(Preview).where(Preview.id == pid).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    finally:
        db.engine.dispose()
    r = dev.post("/api/v1/environments/lab/small/versions", params={"preview": pid})
    assert r.status_code == 410 and "expired" in r.json()["detail"]
    assert dev.get("/api/v1/environments/lab/small").status_code == 404
    # a broken spec is refused with the parser's words, as a submission is
    bad = dev.post("/api/v1/environments/lab/small/preview", content="dependencies: [\n")
    assert bad.status_code == 422


def test_rebuild_solves_again_and_reinstall_brings_back_a_collected_version(
        released: tuple[Service, Path], client_for: Any) -> None:
    dev, admin = client_for("lab=developer"), client_for("*=admin")
    env = "lab/again"
    pinned = "dependencies: [python=3.11, dask, distributed]\n"
    first = _submit(dev, env, pinned)
    assert dev.post(f"/api/v1/environments/{env}/versions/1/rebuild").status_code == 202
    rebuilt = wait_ready(dev, env, 2)
    assert rebuilt["state"] == "ready" and rebuilt["solve"] == "full"
    assert rebuilt["message"] == "rebuild of version 1"
    spec = dev.get(f"/api/v1/environments/{env}/versions/2/spec").text
    assert spec == pinned
    # collect version 1 (keep only the newest), then install its lock again
    r = admin.put("/api/v1/retention/lab/again", json={"keep_last": 1, "keep_days": 0})
    assert r.status_code == 200, r.text
    assert admin.post("/api/v1/gc").status_code == 200
    assert dev.get(f"/api/v1/environments/{env}/versions/1").json()["state"] == "deleted"
    r = dev.post(f"/api/v1/environments/{env}/versions/1/reinstall",
                 params={"message": "back to the first"})
    assert r.status_code == 202, r.text
    again = wait_ready(dev, env, r.json()["version"])
    assert again["state"] == "ready", again["error"]
    assert again["kind"] == "lock" and again["message"] == "back to the first"
    assert _lock(dev, env, again["number"]) == _lock(dev, env, 1)
    assert again["fingerprint"] == first["fingerprint"]
    assert (released[0].root / again["artifacts"]["prefix"]["path"]).is_dir()
    # a viewer cannot; a version without a spec cannot be rebuilt
    viewer = client_for("lab=viewer")
    assert viewer.post(f"/api/v1/environments/{env}/versions/1/rebuild").status_code == 403
    r = dev.post(f"/api/v1/environments/{env}/versions/{again['number']}/rebuild")
    assert r.status_code == 202  # it keeps the spec it was installed for
    wait_ready(dev, env, r.json()["version"])
    events = admin.get("/api/v1/audit", params={"namespace": "lab", "limit": 200}).json()
    mine = [(e["action"], e["version"], e["detail"].get("of")) for e in events["events"]
            if e["environment"] == "again"]
    assert ("rebuild", 2, 1) in mine and ("reinstall", again["number"], 1) in mine
    pushed = dev.post("/api/v1/environments/lab/pushed/locks", content=_lock(dev, env, 1))
    assert pushed.status_code == 202
    wait_ready(dev, "lab/pushed", 1)
    r = dev.post("/api/v1/environments/lab/pushed/versions/1/rebuild")
    assert r.status_code == 409 and "reinstall" in r.json()["detail"]


def test_the_cli_previews_builds_the_preview_and_rebuilds(
        released: tuple[Service, Path], tmp_path: Path) -> None:
    svc = released[0]
    env = {**os.environ, "ENVYARD_SERVER": svc.url, "ENVYARD_TOKEN": svc.token("cli=developer")}

    def cli(*args: str, code: int = 0) -> str:
        done = subprocess.run([ENVYARD, *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == code, done.stderr
        return done.stdout

    spec = tmp_path / "environment.yml"
    spec.write_text("dependencies: [python=3.11, toolz]\n")
    cli("submit", str(spec), "--env", "cli/tools", "--wait", "-q")
    spec.write_text("dependencies: [python=3.11, toolz, pyyaml]\n")
    out = cli("preview", str(spec), "--env", "cli/tools")
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert "  against version 1, keeping what it can" in out
    assert any(line.startswith("+ pyyaml ") for line in out.splitlines()), out
    pid = json.loads(cli("preview", str(spec), "--env", "cli/tools", "--json"))["preview"]
    assert f"--preview {out.split('--preview ')[1].split()[0]}" in out  # says how to build
    built = json.loads(cli("submit", "--env", "cli/tools", "--preview", pid, "--wait",
                           "--json"))
    assert built["state"] == "ready" and built["preview"] == pid
    assert "pyyaml" in {p["name"] for p in built["packages"]}
    again = json.loads(cli("rebuild", f"cli/tools/{built['number']}", "--wait", "--json"))
    assert again["state"] == "ready" and again["solve"] == "full"
    back = json.loads(cli("reinstall", "cli/tools/1", "--wait", "--json", "-m", "undo"))
    assert back["state"] == "ready" and back["message"] == "undo"
    assert "pyyaml" not in {p["name"] for p in back["packages"]}
    # the file and --preview are one or the other
    cli("submit", str(spec), "--env", "cli/tools", "--preview", pid, code=2)


def test_a_preview_says_what_the_dask_pins_and_the_quota_would_do(
        released: tuple[Service, Path], channel: Path, client_for: Any) -> None:
    """(Last in this module: it sets the cluster's pins, which every build then checks.)"""
    publish_release(channel, released[1])
    dev, admin = client_for("strict=developer"), client_for("*=admin")
    _submit(dev, "strict/small", "dependencies: [python=3.11, toolz]\n")  # the namespace
    assert admin.put("/api/v1/dask/pins", json={"versions": {
        "dask": OLDER, "distributed": OLDER}}).status_code == 200
    assert admin.put("/api/v1/namespaces/strict/dask",
                     json={"policy": "block"}).status_code == 200
    assert admin.put("/api/v1/namespaces/strict/quota", json={"bytes": 1000}).status_code == 200
    r = dev.post("/api/v1/environments/strict/nb/preview",
                 content="dependencies: [python=3.11, dask, distributed]\n")
    assert r.status_code == 200, r.text
    shown = r.json()
    dask = shown["dask"]
    assert dask["applies"] and not dask["ok"] and dask["policy"] == "block"
    assert dask["builds"] is False
    assert {v["package"] for v in dask["verdicts"] if v["verdict"] != "match"} >= {"dask"}
    quota = shown["quota"]
    assert quota["quota_bytes"] == 1000 and quota["estimate_bytes"] > 1000
    assert quota["fits"] is False
    assert dev.get("/api/v1/environments/strict/nb").status_code == 404  # nothing built


def test_a_retried_preview_build_gets_the_version_its_first_attempt_made(
        released: tuple[Service, Path], client_for: Any) -> None:
    dev = client_for("retry=developer")
    r = dev.post("/api/v1/environments/retry/env/preview",
                 content="dependencies: [python=3.11, toolz]\n")
    assert r.status_code == 200, r.text
    params, headers = {"preview": r.json()["preview"]}, {"Idempotency-Key": "k-1"}
    first = dev.post("/api/v1/environments/retry/env/versions", params=params,
                     headers=headers)
    again = dev.post("/api/v1/environments/retry/env/versions", params=params,
                     headers=headers)
    assert first.status_code == again.status_code == 202, again.text
    assert first.json()["version"] == again.json()["version"] == 1
    wait_ready(dev, "retry/env", 1)
