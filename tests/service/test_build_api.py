"""Submit and push through the HTTP API: versions become ready and usable."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard

from tests.servers import ENVYARD, Service
from tests.service.conftest import api, wait_ready

DASK = "name: geo\ndependencies:\n  - python=3.11\n  - dask\n  - distributed\n  - numpy\n"


def test_submit_to_ready_env_runs_dask(service: Service, dev_token: str) -> None:
    with api(service, dev_token) as c:
        r = c.post("/api/v1/environments/team/geo/versions", content=DASK)
        assert r.status_code == 202, r.text
        number = r.json()["version"]
        v = wait_ready(c, "team/geo", number)
        assert v["state"] == "ready", v["error"]
        assert v["current"] is True
        assert {"dask", "distributed", "numpy", "python"} <= {p["name"] for p in v["packages"]}
        assert v["prefix_bytes"] > 10_000_000 and v["pack_bytes"] > 1_000_000
        assert set(v["timings"]) == {"solve", "install", "pack"}
        assert set(v["artifacts"]) == {"spec", "lock", "log", "prefix", "pack"}
        assert v["artifacts"]["pack"]["bytes"] == v["pack_bytes"]
        log = c.get(f"/api/v1/environments/team/geo/versions/{number}/log").text
        assert "[solving]" in log and "[installing]" in log and log.rstrip().endswith("ready")
        spec = c.get(f"/api/v1/environments/team/geo/versions/{number}/spec").text
        assert spec == DASK
    current = service.root / "envs" / "team" / "geo" / "current"
    done = subprocess.run([str(current / "bin" / "python"), "-c",
                           "import dask, distributed, numpy; print(dask.__version__)"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2026.1.2"


def test_push_laptop_lock_builds_without_solving(service: Service, dev_token: str,
                                                 channel: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "environment.yml"
    env_file.write_text("dependencies: [python=3.11, dask=2025.12.0, distributed, toolz]\n")
    lock = tmp_path / "conda-lock.yml"
    subprocess.run([ENVYARD, "lock", str(env_file), "-c", str(channel), "-o", str(lock), "-q",
                    "--home", str(tmp_path / "laptop")], check=True, timeout=120)
    with api(service, dev_token) as c:
        r = c.post("/api/v1/environments/team/pinned/locks", content=lock.read_text())
        assert r.status_code == 202, r.text
        v = wait_ready(c, "team/pinned", r.json()["version"])
        assert v["state"] == "ready", v["error"]
        assert "solve" not in v["timings"]
        log = c.get(f"/api/v1/environments/team/pinned/versions/{v['number']}/log").text
        assert "[solving]" not in log
        assert c.get(f"/api/v1/environments/team/pinned/versions/{v['number']}/lock"
                     ).text == lock.read_text()
        with c.stream("GET", f"/api/v1/environments/team/pinned/versions/{v['number']}/pack"
                      ) as resp:
            assert resp.status_code == 200
            archive = tmp_path / "env.tar.zst"
            with archive.open("wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)
    dest = tmp_path / "unpacked"
    dest.mkdir()
    with archive.open("rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as raw, \
            tarfile.open(fileobj=raw, mode="r|") as tar:
        tar.extractall(dest, filter="tar")
    env = {"PATH": f"{dest}/bin:/usr/bin:/bin"}
    subprocess.run([str(dest / "bin" / "conda-unpack")], env=env, check=True, timeout=120)
    done = subprocess.run([str(dest / "bin" / "python"), "-c",
                           "import dask; print(dask.__version__)"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2025.12.0", done.stderr


def build_in_process(app: Any, env: str, spec: str) -> dict[str, Any]:
    """Start ``app`` in this process, submit ``spec`` to ``env`` as a developer, and wait
    for the build to end; its version as the API answers it."""
    import asyncio

    from envyard.service.auth import create_token
    from envyard.service.models import Role

    async def call() -> dict[str, Any]:
        async with app.router.lifespan_context(app):
            with app.state.db.session(write=True) as s:
                token = create_token(s, name="t", roles={env.split("/")[0]: Role.developer})
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                         headers={"Authorization": f"Bearer {token}"}) as c:
                r = await c.post(f"/api/v1/environments/{env}/versions", content=spec)
                assert r.status_code == 202, r.text
                url = r.json()["url"]
                deadline = asyncio.get_running_loop().time() + 120
                while asyncio.get_running_loop().time() < deadline:
                    v: dict[str, Any] = (await c.get(url)).json()
                    if v["state"] in ("ready", "failed", "cancelled"):
                        return v
                    await asyncio.sleep(0.2)
        raise AssertionError(f"the build of {env} did not finish within 120 s")

    return asyncio.run(call())


def test_the_log_is_complete_when_the_version_is_ready(
        tmp_path: Path, channel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower stops reading at a terminal state. The "ready" line used to be written
    after the state was committed, so a follower could end on "[packing] packed …" (seen
    in CI). Here each state write looks at the log as a follower would at that moment."""

    from envyard.service import stages
    from envyard.service.app import create_app
    from envyard.service.settings import Settings

    app = create_app(Settings(root=tmp_path / "volume", default_channels=[str(channel)]))
    last_lines: list[str] = []
    real_publish = stages.publish

    def publish(ctx: Any, version_id: int, where: tuple[str, str, int], *a: Any,
                **kw: Any) -> None:
        real_publish(ctx, version_id, where, *a, **kw)
        log = ctx.layout.build_dir(*where) / "build.log"
        last_lines.append(log.read_text().splitlines()[-1])

    monkeypatch.setattr(stages, "publish", publish)

    v = build_in_process(app, "team/complete", "dependencies: [python=3.11]\n")
    assert v["state"] == "ready", v["error"]
    assert len(last_lines) == 1 and last_lines[0].endswith("[ready] ready"), last_lines


def test_a_build_reads_its_spec_once_and_never_reads_back_its_lock(
        tmp_path: Path, channel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside one build the spec is parsed once and the lock the solver made is used as
    it is: it was written to text and parsed back before (~0.1 s of YAML on an
    800-package lock). Counts the YAML reads done by build threads."""
    import threading

    from envyard.builder import lock as lock_module
    from envyard.builder import spec as spec_module
    from envyard.service.app import create_app
    from envyard.service.settings import Settings

    reads: list[str] = []

    def counted(kind: str, real: Any) -> Any:
        def read(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name.startswith("envyard-build"):
                reads.append(kind)
            return real(*args, **kwargs)
        return read

    monkeypatch.setattr(spec_module, "load_yaml", counted("spec", spec_module.load_yaml))
    monkeypatch.setattr(lock_module, "load_plain", counted("lock", lock_module.load_plain))
    app = create_app(Settings(root=tmp_path / "volume", default_channels=[str(channel)]))

    v = build_in_process(app, "team/once", "dependencies: [python=3.11, toolz]\n")
    assert v["state"] == "ready", v["error"]
    assert reads == ["spec"], reads
    assert set(v["timings"]) == {"solve", "install", "pack"}


def test_log_stream_follows_the_stages(service: Service, dev_token: str) -> None:
    with api(service, dev_token) as c:
        number = c.post("/api/v1/environments/team/streamed/versions",
                        content="dependencies: [python=3.11, msgpack-python]\n").json()["version"]
        events: list[tuple[str, str]] = []
        with c.stream("GET", f"/api/v1/environments/team/streamed/versions/{number}/log",
                      params={"follow": "true"}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            event = ""
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, line[6:]))
    states = [d for e, d in events if e == "state"]
    assert '"ready"' in states[-1]
    logs = [d for e, d in events if e == "log"]
    assert any("[solving]" in line for line in logs)
    assert any("link" in line and "[installing]" in line for line in logs)
    assert logs[-1].endswith("ready")


def test_metrics(service: Service, dev_token: str) -> None:
    """By default (setting metrics: token) only a token with a role on '*' reads them."""
    assert httpx_get(service, "/metrics").status_code == 401
    assert httpx_get(service, "/metrics", dev_token).status_code == 403
    text = httpx_get(service, "/metrics", service.token("*=viewer")).text
    assert 'envyard_versions{state="ready"}' in text
    assert "envyard_queue_length" in text and 'envyard_bytes_stored{part="prefixes"}' in text


def httpx_get(service: Service, path: str, token: str | None = None) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(service.url + path, timeout=30, headers=headers)


def test_a_specs_own_category_builds_and_an_all_optional_push_is_refused(
        service: Service, dev_token: str, channel: Path, tmp_path: Path) -> None:
    """`category: docs` in a submitted spec is what it asks for: it builds (before: every
    package optional, nothing installed). A pushed lock whose packages are all optional is
    refused at the door with the reason, not built empty."""
    with api(service, dev_token) as c:
        r = c.post("/api/v1/environments/team/docs/versions",
                   content="category: docs\ndependencies: [python=3.11, toolz]\n")
        v = wait_ready(c, "team/docs", r.json()["version"])
        assert v["state"] == "ready", v["error"]
        assert any(p["name"] == "toolz" for p in c.get(
            f"/api/v1/environments/team/docs/versions/{v['number']}").json()["packages"])
        lock = c.get(f"/api/v1/environments/team/docs/versions/{v['number']}/lock").text
        r = c.post("/api/v1/environments/team/docs-push/locks", content=lock)
        assert r.status_code == 422 and "its packages are in docs" in r.text, r.text


def test_current_names_a_version_and_two_versions_diff(service: Service, tmp_path: Path
                                                        ) -> None:
    """``current`` works where a version number does; the diff of two versions says what
    adding a package moved, in the API and in ``envyard diff``."""
    from tests.service.conftest import build

    token = service.token("names=developer")
    with api(service, token) as c:
        assert c.get("/api/v1/environments/names/geo/versions/current").status_code == 404
        first = build(c, "names/geo", "pyyaml")["number"]
        second = build(c, "names/geo", "pyyaml, toolz")["number"]
        now = c.get("/api/v1/environments/names/geo/versions/current").json()
        assert now["number"] == second and now["current"] is True
        assert c.get("/api/v1/environments/names/geo/versions/current/lock").text == \
            c.get(f"/api/v1/environments/names/geo/versions/{second}/lock").text
        diff = c.get(f"/api/v1/environments/names/geo/versions/{first}/diff/current").json()
        assert (diff["a"], diff["b"]) == (first, second)
        assert [p["name"] for p in diff["added"]] == ["toolz"]
        assert diff["removed"] == [] and diff["changed"] == []
        back = c.get(f"/api/v1/environments/names/geo/versions/current/diff/{first}").json()
        assert [p["name"] for p in back["removed"]] == ["toolz"]
        assert c.get("/api/v1/environments/names/geo/versions/latest").status_code == 422
        from envyard.builder.lock import parse_lock
        from envyard.builder.render import render_explicit

        lock = parse_lock(c.get("/api/v1/environments/names/geo/versions/current/lock").text)
        explicit = c.get("/api/v1/environments/names/geo/versions/current/explicit").text
        assert explicit == render_explicit(lock, "linux-64") and "@EXPLICIT" in explicit
        pinned = c.get(f"/api/v1/environments/names/geo/versions/{first}/environment.yml")
        assert pinned.status_code == 200 and "name: geo" in pinned.text
        toolz = next(p for p in lock.package if p.name == "toolz")
        assert "toolz" not in pinned.text  # (v1 has none)
        assert f"toolz={toolz.version}={toolz.conda_build}" in c.get(
            "/api/v1/environments/names/geo/versions/current/environment.yml").text
    with api(service, service.token("elsewhere=developer")) as c:  # no reading by name
        assert c.get("/api/v1/environments/names/geo/versions/current").status_code == 403
        assert c.get("/api/v1/environments/names/nothing/versions/current/lock"
                     ).status_code == 403
    env = {"ENVYARD_SERVER": service.url, "ENVYARD_TOKEN": token,
           "XDG_CONFIG_HOME": str(tmp_path)}
    import os

    done = subprocess.run([ENVYARD, "diff", "names/geo", str(first), "current"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert f"names/geo v{first} -> v{second}" in done.stdout and "+ toolz " in done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines())


def test_who_submitted_each_version_and_why(service: Service, tmp_path: Path) -> None:
    """Every version records who submitted it and, when given, why; an environment has a
    description its developers set; a message must be one printable line."""
    import os

    from tests.service.conftest import wait_ready

    token = service.token("hist=developer")
    env = {**os.environ, "ENVYARD_SERVER": service.url, "ENVYARD_TOKEN": token,
           "XDG_CONFIG_HOME": str(tmp_path)}
    spec = tmp_path / "env.yml"
    spec.write_text("dependencies: [python=3.11, pyyaml]\n")
    done = subprocess.run([ENVYARD, "submit", str(spec), "--env", "hist/geo", "--wait", "-q",
                           "-m", "pyyaml for the config reader"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    with api(service, token) as c:
        r = c.post("/api/v1/environments/hist/geo/versions", params={"message": "bad\nline"},
                   content="dependencies: [python=3.11]\n")
        assert r.status_code == 422 and "one line" in r.text
        assert c.put("/api/v1/environments/hist/geo/description",
                     json={"description": "geospatial notebooks"}).status_code == 200
        read = c.get("/api/v1/environments/hist/geo").json()
        assert read["description"] == "geospatial notebooks"
        (first,) = read["versions"]
        assert first["message"] == "pyyaml for the config reader"
        assert first["submitted_by"] == "token 'test'"  # who the service says it is
        second = c.post("/api/v1/environments/hist/geo/versions",
                        content="dependencies: [python=3.11]\n").json()["version"]
        assert wait_ready(c, "hist/geo", second)["message"] is None
    shown = subprocess.run([ENVYARD, "show", "hist/geo"], capture_output=True, text=True,
                           timeout=60, env=env)
    assert "geospatial notebooks" in shown.stdout
    assert "by token 'test'  pyyaml for the config reader" in shown.stdout
    with api(service, service.token("hist=viewer")) as c:
        assert c.put("/api/v1/environments/hist/geo/description",
                     json={"description": "mine"}).status_code == 403


def test_a_failed_build_says_the_stage_it_stopped_in(service: Service,
                                                     dev_token: str) -> None:
    """The UI's timeline marks that stage: a solve that finds nothing stops in solve, a
    pushed lock whose package is not where it says stops in install; a ready one says
    nothing."""
    with api(service, dev_token) as c:
        r = c.post("/api/v1/environments/team/stops/versions",
                   content="dependencies: [python=3.11, nosuchpackage]\n")
        unsolvable = wait_ready(c, "team/stops", r.json()["version"])
        r = c.post("/api/v1/environments/team/stops/versions",
                   content="dependencies: [python=3.11, toolz]\n")
        ready = wait_ready(c, "team/stops", r.json()["version"])
        lock = c.get(f"/api/v1/environments/team/stops/versions/{ready['number']}/lock").text
        # a package whose bytes no longer match: refused when fetched, in install
        first = lock.index("sha256: ") + len("sha256: ")
        broken = lock[:first] + "a" * 64 + lock[first + 64:]
        r = c.post("/api/v1/environments/team/stops/locks", content=broken)
        assert r.status_code == 202, r.text
        mismatched = wait_ready(c, "team/stops", r.json()["version"])
    assert (unsolvable["state"], unsolvable["stopped_in"]) == ("failed", "solve")
    assert (ready["state"], ready["stopped_in"]) == ("ready", None)
    assert mismatched["state"] == "failed", mismatched
    assert mismatched["stopped_in"] in ("check", "install"), mismatched
