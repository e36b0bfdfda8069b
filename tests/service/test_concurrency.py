"""Many submissions at once; a service killed mid-build and started again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.servers import Service
from tests.service.conftest import api, wait_ready
from tests.waiting import wait_until

SMALL = "dependencies: [python=3.11, toolz]\n"


def test_fifty_concurrent_submissions_number_1_to_50(service: Service, dev_token: str) -> None:
    def submit(_: int) -> int:
        with httpx.Client(base_url=service.url, timeout=120,
                          headers={"Authorization": f"Bearer {dev_token}"}) as c:
            r = c.post("/api/v1/environments/team/busy/versions", content=SMALL)
            assert r.status_code == 202, r.text
            return r.json()["version"]

    with ThreadPoolExecutor(25) as pool:
        numbers = list(pool.map(submit, range(50)))
    assert sorted(numbers) == list(range(1, 51))
    with api(service, dev_token) as c:
        states = [wait_ready(c, "team/busy", n)["state"] for n in range(1, 51)]
        assert states == ["ready"] * 50
        env = c.get("/api/v1/environments/team/busy").json()
        assert [v["number"] for v in env["versions"]] == list(range(1, 51))
        assert env["current_version"] == 50
        logs = [c.get(f"/api/v1/environments/team/busy/versions/{n}/log").text
                for n in range(1, 51)]
        locks = {c.get(f"/api/v1/environments/team/busy/versions/{n}/lock").text
                 for n in range(1, 51)}
        fresh = {c.get(f"/api/v1/environments/team/busy/versions/{n}").json()["solve"]
                 == "full" for n in range(1, 51)}
    # identical specs at the same time: those numbered before a version was ready share a
    # fresh solve, those after share one solve on the current lock (minimal change; the
    # same lock whichever version is current), which keeps every package of it: one
    # lock, installed once, the rest reuse them
    solves = sum("[solving] solved in" in log for log in logs)
    assert solves == len(fresh)  # one fresh solve, and one on the base if any came later
    assert sum("reused the solve" in log for log in logs) == 50 - solves
    assert len(locks) == 1
    assert sum("] installed " in log for log in logs) == 1
    links = {(service.root / "envs" / "team" / "busy" / str(n)).resolve() for n in range(1, 51)}
    assert len(links) == 1


def test_killed_mid_build_leaves_nothing_stuck(channel: Path, tmp_path: Path) -> None:
    # one build at a time, so the third submission is still queued when the kill comes
    svc = Service(tmp_path / "volume", channel, extra_env={"ENVYARD_BUILD_CONCURRENCY": "1"})
    svc.root.mkdir()
    svc.start()
    token = svc.token("team=developer")
    try:
        with api(svc, token) as c:
            first = c.post("/api/v1/environments/team/geo/versions", content=SMALL).json()
            assert wait_ready(c, "team/geo", first["version"])["state"] == "ready"
            big = ("dependencies: [python=3.11, dask, distributed, numpy, pandas, ipykernel]\n")
            second = c.post("/api/v1/environments/team/geo/versions", content=big).json()
            wait_until(lambda: c.get(f"/api/v1/environments/team/geo/versions/"
                                     f"{second['version']}").json()["state"]
                       in ("installing", "packing"), timeout=60,
                       what="the big build to install", every=0.02)
            queued = c.post("/api/v1/environments/team/geo/versions",
                            content="dependencies: [python=3.11, pyyaml]\n").json()
        svc.kill()
        svc.start()
        with api(svc, token) as c:
            v2 = c.get(f"/api/v1/environments/team/geo/versions/{second['version']}").json()
            assert v2["state"] == "failed" and "interrupted" in v2["error"]
            env = c.get("/api/v1/environments/team/geo").json()
            assert env["current_version"] in (first["version"], queued["version"])
            v3 = wait_ready(c, "team/geo", queued["version"])  # queued work is picked up again
            assert v3["state"] == "ready"
        current = svc.root / "envs" / "team" / "geo" / "current"
        assert current.resolve().name == (svc.root / "envs" / "team" / "geo" /
                                          str(queued["version"])).resolve().name
        assert not list((svc.root / "prefixes").glob(".*staging*"))
        assert not (svc.root / "envs" / "team" / "geo" / str(second["version"])).exists()
    finally:
        svc.stop()


def test_concurrent_first_submissions_to_new_namespaces(service: Service) -> None:
    token = service.token("*=admin")

    def submit(i: int) -> int:
        with httpx.Client(base_url=service.url, timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            r = c.post(f"/api/v1/environments/fresh{i % 3}/env{i % 2}/versions",
                       content="dependencies: [python=3.11]\n")
            return r.status_code

    with ThreadPoolExecutor(12) as pool:
        assert set(pool.map(submit, range(24))) == {202}


def test_image_rebuilds_share_the_build_slots(tmp_path: Path) -> None:
    """An image rebuild asked through the API used to start a bare thread each: ten asks
    ran ten image builds beside the builds. They now wait for one of the runner's
    ``build_concurrency`` slots, as builds do."""
    import asyncio
    import threading
    import time

    from envyard.service.app import create_app
    from envyard.service.settings import Settings

    app = create_app(Settings(root=tmp_path / "volume", build_concurrency=2))
    running, most, done = 0, 0, threading.Semaphore(0)
    lock = threading.Lock()

    def image_stage() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        done.release()

    async def ask_ten() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(10):
                app.state.runner.run_image(image_stage)
            for _ in range(10):
                assert await asyncio.to_thread(done.acquire, True, 30)

    asyncio.run(ask_ten())
    assert most == 2
