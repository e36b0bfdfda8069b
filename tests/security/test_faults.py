"""Faults and overload: a full disk, too many requests, a bug, a huge hostile push. The
service answers each with a clear JSON status and keeps serving."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Service
from tests.service.conftest import api, wait_ready

SPEC = "dependencies: [python=3.11, toolz]\n"


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB file system for the volume (a tmpfs; the tests run as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    root = tmp_path / "volume"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(root)],
                   check=True, timeout=30)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], timeout=30)


def _fill(root: Path, leave: int) -> Path:
    """Fill the volume until ``leave`` bytes are free."""
    filler = root / "filler"
    with filler.open("ab") as f:
        block = b"\0" * (1 << 20)
        while shutil.disk_usage(root).free > leave + len(block):
            f.write(block)
            f.flush()
        while True:
            try:
                f.write(b"\0" * 4096)
                f.flush()
                if shutil.disk_usage(root).free <= leave:
                    break
            except OSError:
                break
    return filler


@pytest.mark.parametrize("min_free", ["16777216", "0"], ids=["below-min-free", "sqlite-full"])
def test_a_full_volume_answers_507_in_json(small_volume: Path, channel: Path,
                                           min_free: str) -> None:
    """Before: a plain-text 500 (SQLite's 'database or disk is full')."""
    svc = Service(small_volume, channel, extra_env={"ENVYARD_MIN_FREE_BYTES": min_free})
    svc.start()
    try:
        token = svc.token("full=developer")
        filler = _fill(small_volume, 1 << 20 if min_free != "0" else 0)
        with api(svc, token) as c:
            r = c.post("/api/v1/environments/full/env/versions",
                       content=SPEC + "#" * 200_000)
            assert r.status_code == 507, r.text
            assert r.headers["content-type"] == "application/json"
            assert "shared volume is full" in r.json()["detail"]
            filler.unlink()  # space again: the service takes work again, nothing broken
            r = c.post("/api/v1/environments/full/env/versions", content=SPEC)
            assert r.status_code == 202, r.text
    finally:
        svc.stop()


def test_overload_is_a_quick_503_with_retry_after(channel: Path, tmp_path: Path) -> None:
    svc = Service(tmp_path / "volume", channel, extra_env={"ENVYARD_MAX_REQUESTS": "2"})
    svc.root.mkdir()
    svc.start()
    release = threading.Event()
    token = svc.token("busy=developer")

    def slow_body() -> Iterator[bytes]:
        yield b"dependencies: [python=3.11]\n"
        release.wait(30)
        yield b"# done\n"

    statuses: list[int] = []

    def upload() -> None:
        with api(svc, token) as c:
            r = c.post("/api/v1/environments/busy/env/versions", content=slow_body())
            statuses.append(r.status_code)

    uploads = [threading.Thread(target=upload) for _ in range(2)]
    try:
        for t in uploads:
            t.start()
        time.sleep(1.5)  # both uploads are in, each holding a request slot
        with api(svc, token) as c:
            r = c.get("/api/v1/whoami")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1" and "busy" in r.json()["detail"]
        assert httpx.get(f"{svc.url}/healthz", timeout=5).status_code == 200  # always
        release.set()
        for t in uploads:
            t.join(30)
        assert statuses == [202, 202]
        with api(svc, token) as c:
            assert c.get("/api/v1/whoami").status_code == 200
    finally:
        release.set()
        svc.stop()


def test_a_bug_is_a_logged_json_500(tmp_path: Path, channel: Path) -> None:
    """Before: Starlette's plain-text "Internal Server Error"."""
    import asyncio

    from envyard.service.app import create_app
    from envyard.service.settings import Settings

    app = create_app(Settings(root=tmp_path / "volume", default_channels=[str(channel)]))

    def boom() -> None:
        raise ZeroDivisionError("a bug")

    app.add_api_route("/api/v1/boom", boom)

    async def call() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get("/api/v1/boom")

    r = asyncio.run(call())
    assert r.status_code == 500
    assert r.json()["detail"].startswith("internal error (logged as ")


def test_a_write_that_cannot_commit_is_a_503_not_a_success(
        tmp_path: Path, channel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session used to commit after the response was sent: a commit lost to a database
    outage had already answered success (or, once the answer had begun, reset the
    connection: seen in CI as `Connection reset by peer`)."""
    import asyncio

    import sqlalchemy.exc
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from envyard.service.api.deps import SessionDep
    from envyard.service.app import create_app
    from envyard.service.models import Namespace
    from envyard.service.settings import Settings

    app = create_app(Settings(root=tmp_path / "volume", default_channels=[str(channel)]))

    def write(session: Session) -> dict[str, bool]:
        session.add(Namespace(name="lost"))
        return {"created": True}

    write.__annotations__["session"] = SessionDep  # a local name: not a string to resolve

    app.add_api_route("/api/v1/write", write, methods=["POST"])

    def outage(self: Session) -> None:
        raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("server closed"))

    async def call() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                with monkeypatch.context() as m:
                    m.setattr(Session, "commit", outage)
                    return await c.post("/api/v1/write")

    r = asyncio.run(call())
    assert r.status_code == 503 and "retry" in r.json()["detail"]
    with app.state.db.session() as s:
        assert s.scalars(select(Namespace).where(Namespace.name == "lost")).first() is None


def _hostile_lock(path: Path, size: int) -> Path:
    """A lock-shaped YAML of ``size`` bytes made of millions of tiny nodes."""
    with path.open("wb") as f:
        head = b"version: 1\nmetadata: {platforms: [linux-64]}\npackage:\n"
        f.write(head)
        f.write(b"- a\n" * ((size - len(head)) // 4))
    return path


def test_a_huge_hostile_push_does_not_freeze_the_api(svc: Service, tmp_path: Path) -> None:
    """Before: a 33 MB lock blocked /healthz for 60 s (parsed on the event loop, with a
    node budget that grew with the size)."""
    body = _hostile_lock(tmp_path / "lock.yml", 64 << 20).read_bytes()
    token = svc.token("huge=developer")
    answers: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            answers.append(httpx.get(f"{svc.url}/healthz", timeout=5).status_code)
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with api(svc, token) as c:
            r = c.post("/api/v1/environments/huge/env/locks", content=body)
    finally:
        done.set()
        poller.join(30)
    assert r.status_code == 422 and "more than 500000 YAML nodes" in r.json()["detail"]
    assert len(answers) > 10 and set(answers) == {200}  # every poll answered in < 5 s


def test_sigterm_hands_running_builds_back_and_exits_0(channel: Path, tmp_path: Path) -> None:
    """Before: uvicorn re-raised SIGTERM after its shutdown (exit 143) and a running
    build was failed as interrupted."""
    import signal

    svc = Service(tmp_path / "volume", channel)
    svc.root.mkdir()
    svc.start()
    token = svc.token("stop=developer")
    big = "dependencies: [python=3.11, dask, distributed, numpy, pandas, ipykernel]\n"
    with api(svc, token) as c:
        n = c.post("/api/v1/environments/stop/env/versions", content=big).json()["version"]
        deadline = time.monotonic() + 60
        while c.get(f"/api/v1/environments/stop/env/versions/{n}").json()["state"] != \
                "installing":  # a fresh volume: fetching takes seconds
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(60) == 0
    log = (svc.root / "builds" / "stop" / "env" / str(n) / "build.log").read_text()
    svc.start()
    try:
        with api(svc, token) as c:
            v = wait_ready(c, "stop/env", n)
        assert v["state"] == "ready", v["error"]
        assert "back to the queue" in log  # at the boundary after installing, not failed
    finally:
        svc.stop()


def test_trickled_bodies_hold_no_turn(channel: Path, tmp_path: Path) -> None:
    """Found by review: 16 connections sending one byte of a 100-byte body, without a
    token, held every processing turn, and everyone else got 503 after 8 s."""
    import socket

    svc = Service(tmp_path / "volume", channel, extra_env={"ENVYARD_REQUEST_THREADS": "2"})
    svc.root.mkdir()
    svc.start()
    slow = []
    try:
        token = svc.token("slow=viewer")
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", svc.port))
            s.sendall(b"PUT /api/v1/retention/team HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            slow.append(s)
        time.sleep(0.5)
        with api(svc, token) as c:
            r = c.get("/api/v1/whoami", timeout=5)
        assert r.status_code == 200, r.text
        slow[0].settimeout(30)  # the trickler is cut off, with a clear answer
        assert b" 408 " in slow[0].recv(4096).split(b"\r\n")[0] + b" "
    finally:
        for s in slow:
            s.close()
        svc.stop()
