"""CUDA and the other virtual packages through `envyard serve`: what a spec says of its system
changes what is built (``torchish``'s cuda build where CUDA 12 is assumed, its cpu build
elsewhere), a namespace's default applies unless the spec says otherwise, a version the
service's nodes cannot run is refused before anything is stored, and the Kubernetes
runner sends a CUDA environment's build to the GPU profile."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envyard.builder.lock import parse_lock
from tests.cuda_channel import cuda_channel, torchish_build
from tests.kube import KubeAPI, Kubelet
from tests.servers import Service
from tests.service.conftest import api, wait_ready
from tests.waiting import wait_until

LIMITS = {"ENVYARD_VIRTUAL_PACKAGES_ALLOWED": json.dumps({"__cuda": "<=12.8"}),
          "ENVYARD_ALLOWED_CHANNELS": '["conda-forge", "file://*", "/*"]'}


def _spec(channel: Path, head: str = "") -> str:
    return f"{head}channels: [{channel}]\ndependencies: [torchish]\n"


def _override(channel: Path, cuda: str) -> str:
    return _spec(channel, f"variables: {{CONDA_OVERRIDE_CUDA: '{cuda}'}}\n")


@pytest.fixture(scope="module")
def torch_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cuda_channel(tmp_path_factory.mktemp("cuda") / "channel")


@pytest.fixture(scope="module")
def service(torch_channel: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("svc") / "volume", torch_channel, "", LIMITS)
    svc.root.mkdir()
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def admin(service: Service) -> Iterator[httpx.Client]:
    with api(service, service.token("gpu=admin", "lab=developer")) as c:
        yield c


def _preview(c: httpx.Client, env: str, text: str) -> str:
    """The lock a preview of ``text`` shows (solved as its build would be)."""
    r = c.post(f"/api/v1/environments/{env}/preview", content=text)
    assert r.status_code == 200, r.text
    lock = c.get(r.json()["lock_url"])
    assert lock.status_code == 200, lock.text
    return lock.text


def _assumed(lock_text: str, platform: str = "linux-64") -> str:
    return (parse_lock(lock_text).metadata.custom_metadata or {})[
        f"envyard.virtual.{platform}"]


def _build(c: httpx.Client, env: str, text: str) -> dict[str, Any]:
    r = c.post(f"/api/v1/environments/{env}/versions", content=text)
    assert r.status_code == 202, r.text
    v = wait_ready(c, env, r.json()["version"])
    assert v["state"] == "ready", v["error"]
    return v


def _built(svc: Service, env: str) -> str:
    """Which torchish build the environment's current version installed."""
    current = svc.root / "envs" / env / "current"
    return (current / "share" / "torchish" / "build.txt").read_text()


def test_the_spec_changes_the_solve_and_the_lock_says_what_it_assumed(
        admin: httpx.Client, torch_channel: Path) -> None:
    plain = _preview(admin, "lab/torch", _spec(torch_channel))
    override = _preview(admin, "lab/torch", _override(torch_channel, "12.4"))
    keyed = _preview(admin, "lab/torch", _spec(torch_channel,
                                               "system-requirements: {cuda: '12.4'}\n"))
    none = _preview(admin, "lab/torch", _override(torch_channel, ""))
    assert [torchish_build(t) for t in (plain, override, keyed, none)] == \
        ["cpu", "cuda", "cuda", "cpu"]
    assert "__cuda=11.4," in _assumed(plain)  # conda-lock's default, recorded as such
    assert "__cuda=12.4," in _assumed(override) and "__cuda=12.4," in _assumed(keyed)
    assert "__cuda" not in _assumed(none)
    hashes = [parse_lock(t).metadata.content_hash["linux-64"]
              for t in (plain, override, none)]
    assert len(set(hashes)) == 3


def test_a_build_installs_what_the_spec_targets(service: Service, admin: httpx.Client,
                                                torch_channel: Path) -> None:
    v = _build(admin, "lab/gpu-nb", _override(torch_channel, "12.4"))
    assert _built(service, "lab/gpu-nb") == "cuda_1"
    log = admin.get(f"/api/v1/environments/lab/gpu-nb/versions/{v['number']}/log").text
    assert "assuming the system has cuda=12.4" in log
    lock = admin.get(f"/api/v1/environments/lab/gpu-nb/versions/{v['number']}/lock").text
    assert "__cuda=12.4," in _assumed(lock)
    _build(admin, "lab/cpu-nb", _spec(torch_channel))
    assert _built(service, "lab/cpu-nb") == "cpu_0"


def test_a_namespace_default_applies_unless_the_spec_says_otherwise(
        service: Service, admin: httpx.Client, torch_channel: Path) -> None:
    _build(admin, "gpu/first", _spec(torch_channel))  # the namespace exists from here
    assert _built(service, "gpu/first") == "cpu_0"
    with api(service, service.token("gpu=developer")) as dev:
        r = dev.put("/api/v1/namespaces/gpu/system-requirements", json={"cuda": "12.4"})
        assert r.status_code == 403  # a namespace's default is its admins' to set
    r = admin.put("/api/v1/namespaces/gpu/system-requirements", json={"cuda": "12.4"})
    assert r.status_code == 200, r.text
    assert r.json()["system_requirements"] == {"cuda": "12.4"}
    policy = admin.get("/api/v1/namespaces/gpu/policy").json()["system_requirements"]
    assert policy["cuda"] == {"value": "12.4", "source": "namespace"}
    assert policy["glibc"] == {"value": None, "source": "service"}

    assert torchish_build(_preview(admin, "gpu/second", _spec(torch_channel))) == "cuda"
    _build(admin, "gpu/second", _spec(torch_channel))
    assert _built(service, "gpu/second") == "cuda_1"
    # the spec's own word wins: no CUDA for this one
    cpu = _preview(admin, "gpu/cpu-only", _override(torch_channel, ""))
    assert torchish_build(cpu) == "cpu" and "__cuda" not in _assumed(cpu)
    _build(admin, "gpu/cpu-only", _override(torch_channel, ""))
    assert _built(service, "gpu/cpu-only") == "cpu_0"
    env_policy = admin.get("/api/v1/environments/gpu/cpu-only/policy").json()
    assert env_policy["system_requirements"]["cuda"] == {"value": "", "source": "environment"}

    r = admin.put("/api/v1/namespaces/gpu/system-requirements", json={})  # unset again
    assert r.status_code == 200 and r.json()["system_requirements"] == {}
    assert torchish_build(_preview(admin, "gpu/second", _spec(torch_channel))) == "cpu"


@pytest.mark.parametrize("body", [{"cuda": "13.0"}, {"cuda": "twelve"}, {"rocm": "6.0"}],
                         ids=["beyond-the-limit", "not-a-version", "unknown-key"])
def test_a_bad_namespace_default_is_refused(admin: httpx.Client, body: dict[str, str]
                                            ) -> None:
    r = admin.put("/api/v1/namespaces/gpu/system-requirements", json=body)
    assert r.status_code == 422, r.text
    if body == {"cuda": "13.0"}:
        assert "__cuda 13.0" in r.text and "<=12.8" in r.text


def test_a_version_the_nodes_cannot_run_is_refused_and_nothing_is_stored(
        admin: httpx.Client, torch_channel: Path) -> None:
    for text in (_override(torch_channel, "13.0"),
                 _spec(torch_channel, "system-requirements: {cuda: '13.0'}\n")):
        r = admin.post("/api/v1/environments/lab/too-new/versions", content=text)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "__cuda 13.0" in detail and "__cuda <=12.8" in detail, detail
        assert admin.post("/api/v1/environments/lab/too-new/preview",
                          content=text).status_code == 422
    assert admin.get("/api/v1/environments/lab/too-new").status_code == 404
    # within the limit, or no CUDA at all, is accepted
    assert torchish_build(_preview(admin, "lab/too-new", _override(torch_channel, "12.8"))) \
        == "cuda"


# --- the Kubernetes runner: a CUDA environment's Job gets the GPU profile ---------------

NS = "builds"
GPU = {"node_selector": {"pool": "gpu"},
       "resources": {"limits": {"nvidia.com/gpu": "1"}},
       "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                        "effect": "NoSchedule"}]}
PROFILES = {"*": {"node_selector": {"pool": "cpu"}}}


@pytest.fixture(scope="module")
def cluster(torch_channel: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Service, Any]]:
    kube = KubeAPI().start()
    base = tmp_path_factory.mktemp("kube")
    env = {**LIMITS, "ENVYARD_RUNNER": "kubernetes", "ENVYARD_KUBERNETES__API_URL": kube.url,
           "ENVYARD_KUBERNETES__NAMESPACE": NS,
           "ENVYARD_KUBERNETES__IMAGE": "registry.example.org/envyard:0.1.0",
           "ENVYARD_KUBERNETES__VOLUME_CLAIM": "envyard-volume",
           "ENVYARD_KUBERNETES__POLL_SECONDS": "0.2",
           "ENVYARD_KUBERNETES__PROFILES": json.dumps(PROFILES),
           "ENVYARD_KUBERNETES__GPU_PROFILE": json.dumps(GPU)}
    svc = Service(base / "volume", torch_channel, "", env)
    svc.root.mkdir()
    batch = kube.batch()
    kubelet = Kubelet(batch, NS, svc.env, base).start()
    svc.start()
    try:
        yield svc, batch
    finally:
        kubelet.stop()
        svc.stop()
        from kubernetes.client import ApiException

        for job in batch.list_namespaced_job(NS).items:
            with contextlib.suppress(ApiException):
                batch.delete_namespaced_job(job.metadata.name, NS)
        kube.stop()


def _job_pod(batch: Any, env: str) -> Any:
    """The pod template of the Job that built ``env`` (its one Job)."""
    from kubernetes.client import ApiException

    def find() -> Any:
        for job in batch.list_namespaced_job(NS).items:
            if (job.metadata.annotations or {}).get("envyard.io/environment") == env:
                return job.spec.template.spec
        return None

    return wait_until(find, timeout=30, what=f"the Job of {env}", every=0.05,
                      ignoring=(ApiException,))


def test_the_job_of_a_cuda_environment_gets_the_gpu_profile(
        cluster: tuple[Service, Any], torch_channel: Path) -> None:
    svc, batch = cluster
    with api(svc, svc.token("team=admin")) as c:
        _build(c, "team/cpu", _spec(torch_channel))
        _build(c, "team/cuda", _override(torch_channel, "12.4"))
        cpu, gpu = _job_pod(batch, "team/cpu"), _job_pod(batch, "team/cuda")
        assert cpu.node_selector == {"pool": "cpu"} and not cpu.tolerations
        assert gpu.node_selector == {"pool": "gpu"}
        assert gpu.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
        assert gpu.tolerations[0].key == "nvidia.com/gpu"
        # built in the pod as the spec asked
        assert (svc.root / "envs" / "team" / "cuda" / "current" / "share" / "torchish" /
                "build.txt").read_text() == "cuda_1"

        # a namespace's default makes its environments CUDA ones
        assert c.put("/api/v1/namespaces/team/system-requirements",
                     json={"cuda": "12.4"}).status_code == 200
        _build(c, "team/by-default", _spec(torch_channel))
        assert _job_pod(batch, "team/by-default").node_selector == {"pool": "gpu"}

        # a pushed lock whose packages need __cuda
        lock = c.get("/api/v1/environments/team/cuda/versions/current/lock").text
        r = c.post("/api/v1/environments/team/pushed/locks", content=lock)
        assert r.status_code == 202, r.text
        assert wait_ready(c, "team/pushed", r.json()["version"])["state"] == "ready"
        assert _job_pod(batch, "team/pushed").node_selector == {"pool": "gpu"}

