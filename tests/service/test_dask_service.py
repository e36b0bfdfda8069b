"""The service checks every build against the cluster's pins, follows them, and plans and
applies upgrades."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO
from tests.servers import Service
from tests.service.conftest import api, wait_ready
from tests.waiting import wait_until

OLD = "dependencies: [python=3.11, dask=2025.12.0, distributed, toolz]\n"
ANY = "dependencies: [python=3.11, dask, distributed, toolz]\n"
NEW_ONLY = "dependencies: [python=3.11, dask=2026.1.2, distributed, toolz]\n"
NEW_PINS = {"python": "3.11", "dask": "2026.1.2", "distributed": "2026.1.2",
            "msgpack": "1.2.4", "cloudpickle": "3.1.3", "tornado": "6.6.1", "toolz": "1.2.0"}


def test_pins_checks_policy_follow_whatif_apply(channel: Path, tmp_path: Path) -> None:
    svc = Service(tmp_path / "volume", channel, extra_env={
        "ENVYARD_DASK_PINS": str(REPO / "envs" / "cluster" / "dask-pins.yml")})
    svc.root.mkdir()
    svc.start()
    token = svc.token("*=admin")
    try:
        with api(svc, token) as c:
            pins = c.get("/api/v1/dask/pins").json()
            assert pins["versions"]["dask"] == "2025.12.0"
            # warn (default): a mismatch is reported, the version still publishes
            n = c.post("/api/v1/environments/dk/new/versions", content=NEW_ONLY).json()["version"]
            v = wait_ready(c, "dk/new", n)
            assert v["state"] == "ready" and v["dask"]["ok"] is False
            verdicts = {d["package"]: d for d in v["dask"]["verdicts"]}
            assert verdicts["dask"] == {"package": "dask", "required": True, "env": "2026.1.2",
                                        "cluster": "2025.12.0", "verdict": "mismatch"}
            log = c.get(f"/api/v1/environments/dk/new/versions/{n}/log").text
            assert "dask pin check" in log and "mismatch" in log
            # block: the same mismatch fails the version, nothing published
            c.put("/api/v1/namespaces/dk/dask", json={"policy": "block"})
            n2 = c.post("/api/v1/environments/dk/new/versions", content=ANY).json()["version"]
            v2 = wait_ready(c, "dk/new", n2)
            assert v2["state"] == "failed" and "dask, distributed" in v2["error"]
            assert c.get("/api/v1/environments/dk/new").json()["current_version"] == n
            # follow-cluster: the same spec now solves to the pinned versions and passes
            c.put("/api/v1/namespaces/dk/dask", json={"follow": True})
            n3 = c.post("/api/v1/environments/dk/new/versions", content=ANY).json()["version"]
            v3 = wait_ready(c, "dk/new", n3)
            assert v3["state"] == "ready" and v3["dask"]["ok"] is True
            assert {p["name"]: p["version"] for p in v3["packages"]}["dask"] == "2025.12.0"
            # what-if: dk/new can move to the new pins, dk/old (pinned dask) cannot
            c.put("/api/v1/namespaces/dk/dask", json={"policy": "warn", "follow": False})
            wait_ready(c, "dk/old", c.post("/api/v1/environments/dk/old/versions",
                                           content=OLD).json()["version"])
            rows = {r["environment"]: r for r in c.post(
                "/api/v1/dask/upgrade", json={"versions": NEW_PINS}).json()["rows"]}
            assert rows["dk/new"]["solvable"] is True
            assert rows["dk/new"]["current"]["dask"] == "2025.12.0"
            assert rows["dk/new"]["would_be"]["dask"] == "2026.1.2"
            assert rows["dk/old"]["solvable"] is False and "dask" in rows["dk/old"]["conflict"]
            envs = c.get("/api/v1/namespaces/dk").json()["environments"]
            assert {e["name"]: e["latest_version"] for e in envs} == {"new": n3, "old": 1}
            # apply is refused while one environment cannot move, and changes nothing
            r = c.post("/api/v1/dask/upgrade", json={"versions": NEW_PINS, "apply": True})
            assert r.status_code == 409 and "dk/old" in r.json()["detail"]
            assert c.get("/api/v1/dask/pins").json()["versions"]["dask"] == "2025.12.0"
            # once dk/old can move, apply builds both and then moves the pins
            wait_ready(c, "dk/old", c.post("/api/v1/environments/dk/old/versions",
                                           content=ANY).json()["version"])
            applied = c.post("/api/v1/dask/upgrade",
                             json={"versions": NEW_PINS, "apply": True}).json()
            assert {s["environment"] for s in applied["submitted"]} == {"dk/new", "dk/old"}
            for s in applied["submitted"]:
                v = wait_ready(c, s["environment"], s["version"])
                assert v["state"] == "ready" and v["dask"]["ok"] is True
            wait_until(lambda: c.get("/api/v1/dask/pins").json()["versions"]["dask"]
                       == "2026.1.2", timeout=30, what="the pins to move", every=0.2)
    finally:
        svc.stop()


def test_dask_cli(service: Service, tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.servers import ENVYARD

    token = service.token("*=admin")
    env = {**os.environ, "ENVYARD_SERVER": service.url, "ENVYARD_TOKEN": token}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ENVYARD, *args], env=env, capture_output=True, text=True,
                              timeout=300)

    assert cli("dask", "pins").returncode == 20  # none set on this service
    with api(service, token) as c:
        c.put("/api/v1/dask/pins", json={"versions": {"dask": "2025.12.0",
                                                      "distributed": "2025.12.0"}})
        n = c.post("/api/v1/environments/dkcli/env/versions", content=NEW_ONLY).json()["version"]
        wait_ready(c, "dkcli/env", n)
    assert "dask 2025.12.0" in cli("dask", "pins").stdout
    shown = cli("show", f"dkcli/env/{n}").stdout
    assert "dask pin check: MISMATCH" in shown and "dask: mismatch (env 2026.1.2" in shown
    pins = tmp_path / "new-pins.yml"
    pins.write_text("dask: 2026.1.2\ndistributed: 2026.1.2\n")
    table = cli("dask", "upgrade", "--pins", str(pins))
    assert table.returncode == 0, table.stderr
    assert "dkcli/env" in table.stdout and "solvable" in table.stdout


def test_pins_from_the_cluster_environment(channel: Path, tmp_path: Path) -> None:
    svc = Service(tmp_path / "volume", channel,
                  extra_env={"ENVYARD_DASK_PINS_ENV": "cluster/image"})
    svc.root.mkdir()
    svc.start()
    token = svc.token("*=admin")
    try:
        with api(svc, token) as c:
            assert c.get("/api/v1/dask/pins").status_code == 404
            wait_ready(c, "cluster/image", c.post("/api/v1/environments/cluster/image/versions",
                                                  content=OLD).json()["version"])
            pins = c.get("/api/v1/dask/pins").json()
            assert pins["versions"]["dask"] == "2025.12.0"
            assert pins["source"] == "the lock of cluster/image"
            n = c.post("/api/v1/environments/team/nb/versions", content=NEW_ONLY
                       ).json()["version"]
            v = wait_ready(c, "team/nb", n)
            assert v["dask"]["ok"] is False
    finally:
        svc.stop()


def test_an_applied_upgrade_survives_a_restart(channel: Path, tmp_path: Path) -> None:
    """Before: the pins moved from a thread of the process that applied the upgrade; a
    restart before its builds ended lost the move, and the pins never changed."""
    env = {"ENVYARD_DASK_PINS": str(REPO / "envs" / "cluster" / "dask-pins.yml"),
           "ENVYARD_BUILD_CONCURRENCY": "1"}
    root = tmp_path / "volume"
    root.mkdir()
    svc = Service(root, channel, extra_env=env).start()
    token = svc.token("*=admin")
    try:
        with api(svc, token) as c:
            wait_ready(c, "dk/any", c.post("/api/v1/environments/dk/any/versions",
                                           content=ANY).json()["version"])
            applied = c.post("/api/v1/dask/upgrade",
                             json={"versions": NEW_PINS, "apply": True})
            assert applied.status_code == 200, applied.text
            (built,) = applied.json()["submitted"]
    finally:
        svc.stop()  # at once: the build is handed back to the queue (or has not begun)
    again = Service(root, channel, extra_env=env, port=svc.port).start()
    try:
        with api(again, token) as c:
            assert wait_ready(c, built["environment"], built["version"])["state"] == "ready"
            wait_until(lambda: c.get("/api/v1/dask/pins").json()["versions"]["dask"]
                       == "2026.1.2", timeout=30, what="the pins to move after the restart",
                       every=0.2)
            metrics = c.get("/metrics").text
            assert "envyard_pin_moves_waiting 0" in metrics
    finally:
        again.stop()
