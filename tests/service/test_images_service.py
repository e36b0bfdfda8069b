"""Images through the service: opt-in, v<N> and current tags, rollback moves current, a
one-package change pushes little, a failing image leaves the environment ready, GC deletes
a collected version's manifest unless a live version shares it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envyard.builder.install import install_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.registry import Registry
from envyard.builder.spec import parse_spec
from tests.images import RegistryServer, make_base_image
from tests.servers import Service
from tests.service.conftest import api, wait_ready
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(900)

A = "dependencies: [python 3.11.*, dask=2025.12.0, distributed=2025.12.0]\n"
B = "dependencies: [python 3.11.*, dask=2025.12.0, distributed=2025.12.0, lz4]\n"


@pytest.fixture(scope="module")
def registry(channel: Path, cache_dir: Path, pkgs_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, str]]:
    server = RegistryServer().start()
    prefix = tmp_path_factory.mktemp("baselibs") / "env"
    install_lock(lock_env(parse_spec(B), LockOptions(channels=[str(channel)],
                                                     platforms=["linux-64"],
                                                     cache_dir=cache_dir)),
                 prefix=prefix, platform="linux-64", pkgs_dir=pkgs_dir)
    with Registry(server.host) as client:
        base = make_base_image(client, "base", "1", prefix)
    yield server, base
    server.stop()


def _service(root: Path, channel: Path, registry: str, base: str) -> Service:
    svc = Service(root, channel, extra_env={"ENVYARD_IMAGE__REGISTRY": registry,
                                            "ENVYARD_IMAGE__BASE": base})
    svc.root.mkdir(parents=True)
    return svc.start()


@pytest.fixture(scope="module")
def imaging(registry: tuple[RegistryServer, str], channel: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = _service(tmp_path_factory.mktemp("img") / "volume", channel, registry[0].host,
                   registry[1])
    yield svc
    svc.stop()


def _blobs_of(blobs: Path, digest: str) -> set[str]:
    """The store's file names of a manifest, its config and its layers."""
    import json

    manifest = json.loads((blobs / digest.split(":")[1]).read_text())
    return {d.split(":")[1] for d in (digest, manifest["config"]["digest"],
                                      *(layer["digest"] for layer in manifest["layers"]))}


def image_done(c: httpx.Client, env: str, number: int, timeout: float = 300
               ) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        image = c.get(f"/api/v1/environments/{env}/versions/{number}").json()["image"]
        return image if image and image["state"] in ("ready", "failed") else None

    return wait_until(finished, timeout=timeout, what=f"the image of {env} v{number}")


def build(c: httpx.Client, env: str, text: str) -> tuple[int, dict[str, Any]]:
    resp = c.post(f"/api/v1/environments/{env}/versions", content=text)
    assert resp.status_code == 202, resp.text
    v = wait_ready(c, env, resp.json()["version"])
    assert v["state"] == "ready", v["error"]
    return v["number"], image_done(c, env, v["number"])


def test_images_follow_versions_current_and_gc(imaging: Service,
                                                registry: tuple[RegistryServer, str]) -> None:
    host = registry[0].host
    with api(imaging, imaging.token("*=admin")) as c, Registry(host) as reg:
        # off by default: a version gets no image
        c.post("/api/v1/environments/team/geo/versions", content=A)
        assert wait_ready(c, "team/geo", 1)["state"] == "ready"
        assert c.get("/api/v1/environments/team/geo/versions/1").json()["image"] is None
        assert c.put("/api/v1/namespaces/team/images", json={"enabled": True}).json() == {
            "namespace": "team", "images": True}
        # an earlier ready version can get its image afterwards
        assert c.post("/api/v1/environments/team/geo/versions/1/image").status_code == 202
        first = image_done(c, "team/geo", 1)
        assert first["state"] == "ready", first
        assert first["reference"] == f"{host}/team-geo:v1"
        assert reg.manifest_digest("team-geo", "v1") == first["digest"]

        two, second = build(c, "team/geo", B)
        assert second["state"] == "ready", second
        assert reg.manifest_digest("team-geo", "current") == second["digest"]
        assert second["bytes_pushed"] < 0.15 * first["bytes_pushed"]
        log = c.get(f"/api/v1/environments/team/geo/versions/{two}/log").text
        assert "image: pushed" in log

        back = c.post("/api/v1/environments/team/geo/rollback", json={"version": 1}).json()
        assert back["image"].startswith("image team-geo:current")
        assert reg.manifest_digest("team-geo", "current") == first["digest"]

        three, third = build(c, "team/geo", A)  # the same lock as v1: the same image
        assert third["digest"] == first["digest"]
        assert c.put("/api/v1/retention/team/geo", json={"keep_last": 1, "keep_days": 0}
                     ).status_code == 200
        blobs = imaging.root / "images" / "blobs" / "sha256"
        before = {f.name for f in blobs.iterdir()}
        used = _blobs_of(blobs, third["digest"]) & before  # base layers were only mounted
        assert before - used  # lz4's layer, v2's config and manifest, the base's config
        result = c.post("/api/v1/gc").json()
        assert result["pruned_image_blobs"] == len(before - used)
        assert {f.name for f in blobs.iterdir()} == used
        assert sorted(result["deleted"]) == ["team/geo/1", "team/geo/2"]
        assert reg.manifest_digest("team-geo", "v2") is None  # collected, deleted
        assert reg.manifest_digest("team-geo", f"v{three}") == first["digest"]  # shared: kept
        assert reg.manifest_digest("team-geo", "current") == first["digest"]


def test_failed_image_leaves_environment_ready(registry: tuple[RegistryServer, str],
                                               channel: Path, tmp_path: Path) -> None:
    svc = _service(tmp_path / "volume", channel, registry[0].host,
                   f"{registry[0].host}/no-such-base:1")
    try:
        with api(svc, svc.token("*=admin")) as c:
            c.post("/api/v1/environments/team/x/versions", content=A)
            assert wait_ready(c, "team/x", 1)["state"] == "ready"
            assert c.put("/api/v1/environments/team/x/images",
                         json={"enabled": True}).status_code == 200
            c.post("/api/v1/environments/team/x/versions/1/image")
            image = image_done(c, "team/x", 1)
            assert image["state"] == "failed" and "no-such-base" in image["error"]
            v = c.get("/api/v1/environments/team/x/versions/1").json()
            assert v["state"] == "ready"
            assert (svc.root / "envs" / "team" / "x" / "current" / "bin" / "python").exists()
    finally:
        svc.stop()


def test_images_need_a_registry(service: Service) -> None:
    with api(service, service.token("*=admin")) as c:
        c.post("/api/v1/environments/noreg/x/versions", content="dependencies: [python]\n")
        resp = c.put("/api/v1/namespaces/noreg/images", json={"enabled": True})
        assert resp.status_code == 409 and "image.registry" in resp.json()["detail"]
        resp = c.put("/api/v1/namespaces/noreg/images", json={"enabled": "yes please"})
        assert resp.status_code == 422


def test_image_cli(imaging: Service, registry: tuple[RegistryServer, str],
                   tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    from tests.servers import ENVYARD

    env = {**os.environ, "ENVYARD_SERVER": imaging.url,
           "ENVYARD_TOKEN": imaging.token("*=admin"), "ENVYARD_HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ENVYARD, *args], env=env, capture_output=True, text=True,
                              timeout=600)

    with api(imaging, env["ENVYARD_TOKEN"]) as c:
        c.post("/api/v1/environments/cli/x/versions", content=A)
        assert wait_ready(c, "cli/x", 1)["state"] == "ready"
    done = run("image", "enable", "cli/x")
    assert done.returncode == 0 and "enabled" in done.stdout, done.stderr
    done = run("image", "build", "cli/x/1", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "ready"
    assert "image: ready" in run("show", "cli/x/1").stdout

    prefix = imaging.root / "envs" / "cli" / "x" / "1"
    to = f"{registry[0].host}/laptop:1"
    first = run("image", "push", str(prefix), "--base", registry[1], "--to", to, "--json")
    assert first.returncode == 0, first.stderr
    again = run("image", "push", str(prefix), "--base", registry[1], "--to", to, "--json")
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert a["digest"] == b["digest"] and b["bytes_sent"] == 0 < a["bytes_sent"]
    bad = run("image", "push", str(tmp_path / "nothing"), "--base", registry[1], "--to", to)
    assert bad.returncode == 18 and "not a conda environment" in bad.stderr
    assert "Traceback" not in bad.stderr


NB = "dependencies: [python 3.11.*, ipykernel, dask=2025.12.0, distributed=2025.12.0]\n"


def test_kubespawner_profiles_run_the_environments_image(
        imaging: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """envyard's profile_list, read by KubeSpawner itself (imported, not imitated): a
    profile per environment the user may start in that has an image; choosing one makes
    the pod run that image. jhub-apps gets the same environments by name."""
    import asyncio

    from kubespawner import KubeSpawner

    from envyard.service.spawn import jhub_apps_conda_envs, profile_list
    from tests.kube import KubeAPI

    kube = KubeAPI().start()  # KubeSpawner reads a kubeconfig when made: the emulator's
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: '{kube.url}'}}}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\nusers: [{name: t, user: {}}]\n")
    import kubernetes_asyncio.config.kube_config as kube_config  # (read at its import)

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))

    with api(imaging, imaging.token("*=admin")) as c:
        c.post("/api/v1/environments/kube/bare/versions", content=A)  # no kernel
        assert wait_ready(c, "kube/bare", 1)["state"] == "ready"
        assert c.put("/api/v1/namespaces/kube/images", json={"enabled": True}).status_code \
            == 200
        _, image = build(c, "kube/nb", NB)
        assert image["state"] == "ready", image
        c.post("/api/v1/environments/hidden/nb/versions", content=NB)  # not readable
        assert wait_ready(c, "hidden/nb", 1)["state"] == "ready"
    viewer = imaging.token("kube=viewer")

    def spawner_of(token: str) -> KubeSpawner:
        return KubeSpawner(_mock=True, image="hub/singleuser:1", profile_list=profile_list(
            imaging.url, "hub/singleuser:1", token_for=lambda spawner: token))

    async def choose(spawner: KubeSpawner, profile: str | None) -> KubeSpawner:
        spawner.user_options = {"profile": profile} if profile else {}
        await spawner.load_user_options()
        return spawner

    async def journey() -> None:
        spawner = await choose(spawner_of(viewer), "kube/nb")
        assert spawner.image == image["reference"]
        assert spawner.environment["ENVYARD_ENVIRONMENT"] == "kube/nb"
        # the same spawner (the hub keeps it) started without a profile: the hub's image
        # again, not the environment's (KubeSpawner keeps a profile's settings)
        await choose(spawner, None)
        assert spawner.image == "hub/singleuser:1"
        assert "ENVYARD_ENVIRONMENT" not in spawner.environment
        for refused in ("hidden/nb", "kube/bare"):
            with pytest.raises(ValueError, match="profile"):
                await choose(spawner_of(viewer), refused)
        # a user who can no longer read it (or envyard not answering) gets the hub image
        gone = await choose(spawner_of(viewer), "kube/nb")
        gone.profile_list = profile_list(imaging.url, "hub/singleuser:1",
                                         token_for=lambda spawner: "ey_revoked")
        await choose(gone, None)
        assert gone.image == "hub/singleuser:1"

    asyncio.run(journey())
    assert jhub_apps_conda_envs(imaging.url, viewer)() == ["kube/nb"]
    kube.stop()
