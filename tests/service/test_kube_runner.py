"""The Kubernetes runner against kmock's API emulator: the Job's spec, its status followed
to success and failure, infrastructure-only retries, cancel, and reconciliation at start.
Pods are the real ``envyard worker`` run by a stand-in kubelet (``tests/kube.py``)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from envyard.service.kube_jobs import BUILD_FAILED, job_manifest
from envyard.service.settings import Settings
from tests.kube import KubeAPI, Kubelet, kill_when
from tests.servers import Service
from tests.service.conftest import api, wait_ready
from tests.waiting import wait_until

NS = "builds"
PROFILES = {"gpu": {"resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                                  "limits": {"nvidia.com/gpu": "1"}},
                    "node_selector": {"pool": "gpu"},
                    "tolerations": [{"key": "gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}]},
            "*": {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}}


def _kube_env(url: str) -> dict[str, str]:
    return {"ENVYARD_RUNNER": "kubernetes", "ENVYARD_KUBERNETES__API_URL": url,
            "ENVYARD_KUBERNETES__NAMESPACE": NS,
            "ENVYARD_KUBERNETES__IMAGE": "registry.example.org/envyard:0.1.0",
            "ENVYARD_KUBERNETES__VOLUME_CLAIM": "envyard-volume",
            "ENVYARD_KUBERNETES__POLL_SECONDS": "0.2",
            "ENVYARD_KUBERNETES__PROFILES": json.dumps(PROFILES),
            "ENVYARD_ALLOWED_CHANNELS": '["conda-forge", "file://*", "/*"]'}


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeAPI]:
    k = KubeAPI().start()
    yield k
    k.stop()


@pytest.fixture
def cluster(kube: KubeAPI, channel: Path, tmp_path: Path
            ) -> Iterator[tuple[Service, Kubelet, Any]]:
    svc = Service(tmp_path / "volume", channel, "", _kube_env(kube.url))
    svc.root.mkdir()
    batch = kube.batch()
    kubelet = Kubelet(batch, NS, svc.env, tmp_path).start()
    svc.start()
    try:
        yield svc, kubelet, batch
    finally:
        kubelet.stop()
        svc.stop()
        from kubernetes.client import ApiException

        for job in batch.list_namespaced_job(NS).items:  # the next test starts empty
            with contextlib.suppress(ApiException):
                batch.delete_namespaced_job(job.metadata.name, NS)


def _submit(c: httpx.Client, env: str, deps: str) -> int:
    r = c.post(f"/api/v1/environments/{env}/versions",
               content=f"dependencies: [python=3.11, {deps}]\n")
    assert r.status_code == 202, r.text
    return r.json()["version"]


def _version_id(svc: Service, env: str, number: int) -> int:
    ns, name = env.split("/")
    with sqlite3.connect(svc.root / "envyard.db") as db:
        return db.execute("SELECT v.id FROM versions v JOIN environments e ON "
                          "v.environment_id = e.id JOIN namespaces n ON e.namespace_id = "
                          "n.id WHERE n.name = ? AND e.name = ? AND v.number = ?",
                          (ns, name, number)).fetchone()[0]


def _job(batch: Any, name: str, timeout: float = 30) -> Any:
    from kubernetes.client import ApiException

    return wait_until(lambda: batch.read_namespaced_job(name, NS), timeout=timeout,
                      what=f"Job {name} to be created", every=0.05, ignoring=(ApiException,))


def _finished(batch: Any, name: str, timeout: float = 60) -> Any:
    """The Job's status once the pod has exited (the version may be ready a moment
    before its worker process ends)."""
    def finished() -> Any:
        status = batch.read_namespaced_job(name, NS).status
        return status if status and (status.succeeded or status.failed) else None

    return wait_until(finished, timeout=timeout, what=f"Job {name} to finish", every=0.05)


def _gone(batch: Any, name: str, timeout: float = 30) -> bool:
    from kubernetes.client import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            batch.read_namespaced_job(name, NS)
        except ApiException as exc:
            return exc.status == 404
        time.sleep(0.05)
    return False


def test_job_manifest_validates_and_carries_the_profile(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path / "srv", runner="kubernetes", solve_timeout=60,
                        install_timeout=600, pack_timeout=300, kubernetes={
                            "image": "registry.example.org/envyard:0.1.0",
                            "volume_claim": "envyard-volume", "config_map": "envyard-settings",
                            "namespace": NS, "service_account": "envyard-builds",
                            "env": [{"name": "ENVYARD_DATABASE_URL", "valueFrom": {
                                "secretKeyRef": {"name": "db", "key": "url"}}}],
                            "profiles": PROFILES})
    gpu = job_manifest(settings, 42, "gpu", "torch", 3)
    pod = gpu["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["envyard", "worker", "42", "--job", "envyard-build-42"]
    assert c["image"] == "registry.example.org/envyard:0.1.0"
    assert {"name": "volume", "mountPath": str(tmp_path / "srv")} in c["volumeMounts"]
    assert {"name": "volume", "persistentVolumeClaim": {"claimName": "envyard-volume"}} \
        in pod["volumes"]
    assert gpu["spec"]["activeDeadlineSeconds"] == 60 + 600 + 300 + 600
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["tolerations"][0]["key"] == "gpu"
    assert {"name": "ENVYARD_CONFIG", "value": "/etc/envyard/envyard.yml"} in c["env"]
    assert c["env"][-1]["valueFrom"]["secretKeyRef"]["name"] == "db"
    rules = gpu["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [BUILD_FAILED]  # build errors: no retry
    assert rules[1]["onPodConditions"][0]["type"] == "DisruptionTarget"  # evictions: free
    other = job_manifest(settings, 43, "team", "nb", 1)["spec"]["template"]["spec"]
    assert other["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert "nodeSelector" not in other
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(gpu))
    done = subprocess.run([str(Path(sys.executable).with_name("kubernetes-validate")), "-k",
                           "1.33.0", "--strict", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_build_runs_as_a_job(cluster: tuple[Service, Kubelet, Any]) -> None:
    svc, kubelet, batch = cluster
    with api(svc, svc.token("gpu=developer")) as c:
        number = _submit(c, "gpu/nb", "toolz")
        vid = _version_id(svc, "gpu/nb", number)
        job = _job(batch, f"envyard-build-{vid}")
        assert job.spec.template.spec.node_selector == {"pool": "gpu"}
        assert job.spec.template.spec.containers[0].command[:3] == ["envyard", "worker",
                                                                     str(vid)]
        v = wait_ready(c, "gpu/nb", number)
        assert v["state"] == "ready", v["error"]
        assert (svc.root / "envs" / "gpu" / "nb" / "current").is_symlink()
        log = c.get(f"/api/v1/environments/gpu/nb/versions/{number}/log").text
        assert "solving for" in log and "ready" in log  # the pod's log, read by the API
        assert _finished(batch, f"envyard-build-{vid}").succeeded == 1
        assert kubelet.codes[f"envyard-build-{vid}"] == [0]


def test_a_failed_build_fails_its_job_once(cluster: tuple[Service, Kubelet, Any]) -> None:
    svc, kubelet, batch = cluster
    with api(svc, svc.token("team=developer")) as c:
        number = _submit(c, "team/bad", "no-such-package")
        v = wait_ready(c, "team/bad", number)
        vid = _version_id(svc, "team/bad", number)
        assert v["state"] == "failed" and "no-such-package" in v["error"]
        cond = _finished(batch, f"envyard-build-{vid}").conditions[0]
        assert (cond.type, cond.reason) == ("Failed", "PodFailurePolicy")
        assert kubelet.codes[f"envyard-build-{vid}"] == [BUILD_FAILED]  # not retried
        assert "no-such-package" in c.get(f"/api/v1/environments/team/bad/versions/"
                                          f"{number}").json()["error"]  # not overwritten


def test_a_lost_pod_is_retried(cluster: tuple[Service, Kubelet, Any]) -> None:
    svc, kubelet, _batch = cluster
    token = svc.token("team=developer")
    with api(svc, token) as c:
        def installing() -> bool:
            return any(v["state"] in ("installing", "packing") for v in c.get(
                "/api/v1/environments/team/lost/versions").json())

        kubelet.during = kill_when(installing, once=set())
        number = _submit(c, "team/lost", "pyyaml")
        v = wait_ready(c, "team/lost", number)
        vid = _version_id(svc, "team/lost", number)
        assert v["state"] == "ready", v["error"]
        assert kubelet.runs[f"envyard-build-{vid}"] == 2
        log = c.get(f"/api/v1/environments/team/lost/versions/{number}/log").text
        assert "retrying: the previous pod of this build was lost" in log


def test_deadline_and_spent_retries_fail_the_version(
        cluster: tuple[Service, Kubelet, Any]) -> None:
    svc, kubelet, batch = cluster
    kubelet.paused = True
    with api(svc, svc.token("team=developer")) as c:
        slow = _submit(c, "team/slow", "toolz")
        crash = _submit(c, "team/crash", "toolz")
        for env, number, reason in (("team/slow", slow, "DeadlineExceeded"),
                                    ("team/crash", crash, "BackoffLimitExceeded")):
            name = f"envyard-build-{_version_id(svc, env, number)}"
            _job(batch, name)
            batch.patch_namespaced_job_status(name, NS, {"status": {"failed": 3, "conditions": [
                {"type": "Failed", "status": "True", "reason": reason}]}})
        s, k = wait_ready(c, "team/slow", slow, 30), wait_ready(c, "team/crash", crash, 30)
        assert s["state"] == "failed" and "deadline of 4500 s" in s["error"]
        assert k["state"] == "failed" and "failed 3 times" in k["error"]
        assert "deadline" in c.get(f"/api/v1/environments/team/slow/versions/{slow}/log").text


def test_cancel_deletes_the_job(cluster: tuple[Service, Kubelet, Any]) -> None:
    svc, kubelet, batch = cluster
    kubelet.paused = True
    with api(svc, svc.token("team=developer")) as c:
        number = _submit(c, "team/stop", "toolz")
        name = f"envyard-build-{_version_id(svc, 'team/stop', number)}"
        _job(batch, name)
        r = c.post(f"/api/v1/environments/team/stop/versions/{number}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        assert _gone(batch, name)
        assert c.get(f"/api/v1/environments/team/stop/versions/{number}"
                     ).json()["state"] == "cancelled"


def test_start_reconciles_jobs_and_versions(cluster: tuple[Service, Kubelet, Any]) -> None:
    svc, kubelet, batch = cluster
    kubelet.paused = True
    token = svc.token("team=developer")
    with api(svc, token) as c:
        numbers = [_submit(c, f"team/r{i}", "toolz") for i in range(4)]
    ids = [_version_id(svc, f"team/r{i}", n) for i, n in enumerate(numbers)]
    for vid in ids:
        _job(batch, f"envyard-build-{vid}")
    svc.stop()  # while the service is away:
    batch.patch_namespaced_job_status(  # r0's Job ends without the worker recording anything
        f"envyard-build-{ids[0]}", NS, {"status": {"succeeded": 1, "conditions": [
            {"type": "Complete", "status": "True"}]}})
    batch.delete_namespaced_job(f"envyard-build-{ids[1]}", NS)  # r1's Job vanishes
    with sqlite3.connect(svc.root / "envyard.db") as db:  # r2 is collected by an admin
        db.execute("UPDATE versions SET state = 'cancelled' WHERE id = ?", (ids[2],))
        # r3's worker has recorded its result; its pod is still exiting
        db.execute("UPDATE versions SET state = 'failed' WHERE id = ?", (ids[3],))
    svc.start()
    with api(svc, token) as c:
        r0 = wait_ready(c, "team/r0", numbers[0], 30)
        assert r0["state"] == "failed" and "ended without a result" in r0["error"]
    assert _job(batch, f"envyard-build-{ids[1]}")  # r1 was queued: a new Job
    assert _gone(batch, f"envyard-build-{ids[2]}")  # r2's running Job is deleted
    assert _job(batch, f"envyard-build-{ids[3]}")  # r3's is left to finish
    kubelet.paused = False
    with api(svc, token) as c:
        assert wait_ready(c, "team/r1", numbers[1])["state"] == "ready"
