"""The Kubernetes Job of one build: a pure function of the settings and the version.

The pod runs ``envyard worker <id> --job <name>`` in the service image, with the shared
volume's claim mounted at ``root`` (the same path as everywhere: conda bakes it into
files) and the settings ConfigMap at ``/etc/envyard``. An environment that targets CUDA
gets the GPU profile (``kubernetes.gpu_profile``), so it builds on a GPU node. Retries are for the
infrastructure only: a pod disrupted (evicted, preempted, its node drained) is ignored
and replaced, other pod failures (out of memory, lost) count against ``retries``, and the
worker's own exit code for a failed build (``BUILD_FAILED``) fails the Job at once.
"""

from __future__ import annotations

from typing import Any

from envyard.service import policy
from envyard.service.settings import Settings

#: Exit code of ``envyard worker`` when the build failed (its error is in the database).
BUILD_FAILED = 3
CONFIG_DIR = "/etc/envyard"
MANAGED = {"app.kubernetes.io/managed-by": "envyard", "app.kubernetes.io/component": "build"}
VERSION_LABEL = "envyard.io/version-id"


def job_name(version_id: int) -> str:
    """One Job name per version: Kubernetes refuses a second Job of the same name, so a
    version can never be built by two Jobs."""
    return f"envyard-build-{version_id}"


def claim_of(version_id: int) -> str:
    """What ``Version.claimed_by`` holds while the Job owns the version."""
    return f"job/{job_name(version_id)}"


def deadline(settings: Settings) -> int:
    """activeDeadlineSeconds: every stage's own limit plus the margin."""
    return int(settings.solve_timeout + settings.install_timeout + settings.pack_timeout
               + settings.kubernetes.deadline_margin)


def job_manifest(settings: Settings, version_id: int, namespace: str, name: str,
                 number: int, gpu: bool = False) -> dict[str, Any]:
    k = settings.kubernetes
    p = policy.job_profile(settings, namespace, gpu).value
    labels = {**MANAGED, VERSION_LABEL: str(version_id), "envyard.io/namespace": namespace}
    env: list[dict[str, Any]] = [{"name": "ENVYARD_ROOT", "value": str(settings.root)}]
    mounts: list[dict[str, Any]] = [{"name": "volume", "mountPath": str(settings.root)}]
    volumes: list[dict[str, Any]] = [
        {"name": "volume", "persistentVolumeClaim": {"claimName": k.volume_claim}}]
    if k.config_map:
        env.append({"name": "ENVYARD_CONFIG", "value": f"{CONFIG_DIR}/{k.config_file}"})
        mounts.append({"name": "settings", "mountPath": CONFIG_DIR, "readOnly": True})
        volumes.append({"name": "settings", "configMap": {"name": k.config_map}})
    for i, (secret, directory) in enumerate(sorted(k.secret_mounts.items())):
        mounts.append({"name": f"secret-{i}", "mountPath": directory, "readOnly": True})
        volumes.append({"name": f"secret-{i}", "secret": {"secretName": secret}})
    container: dict[str, Any] = {
        "name": "build", "image": k.image,
        "command": ["envyard", "worker", str(version_id), "--job", job_name(version_id)],
        "env": env + list(k.env), "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if p.resources:
        container["resources"] = p.resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "containers": [container], "volumes": volumes,
        # Kubernetes' service links would inject ENVYARD_<SERVICE>_PORT=tcp://… variables,
        # which read as envyard settings (a release named envyard: ENVYARD_PORT)
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "fsGroup": 1000},
    }
    if k.service_account:
        pod["serviceAccountName"] = k.service_account
    if p.node_selector:
        pod["nodeSelector"] = p.node_selector
    if p.tolerations:
        pod["tolerations"] = p.tolerations
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(version_id), "namespace": k.namespace,
                     "labels": labels,
                     "annotations": {"envyard.io/environment": f"{namespace}/{name}",
                                     "envyard.io/version": str(number)}},
        "spec": {
            "backoffLimit": k.retries,
            "activeDeadlineSeconds": deadline(settings),
            "ttlSecondsAfterFinished": k.ttl_seconds,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {
                    "containerName": "build", "operator": "In", "values": [BUILD_FAILED]}},
                {"action": "Ignore", "onPodConditions": [
                    {"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def failure_reason(settings: Settings, job: dict[str, Any]) -> str | None:
    """Why a finished Job failed, in words for the version's error; None if it did not."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") != "Failed" or cond.get("status") != "True":
            continue
        reason = cond.get("reason", "")
        if reason == "DeadlineExceeded":
            return (f"the build did not finish within its deadline of {deadline(settings)} s "
                    "(Kubernetes stopped its Job)")
        if reason == "BackoffLimitExceeded":
            return (f"the build's pod failed {settings.kubernetes.retries + 1} times "
                    "(out of memory, lost or crashed); see kubectl describe job "
                    f"{job['metadata']['name']}")
        if reason == "PodFailurePolicy":
            return "the build failed (its error was not recorded)"
        return f"its Kubernetes Job failed: {reason} {cond.get('message', '')}".strip()
    return None


def succeeded(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return bool(status.get("succeeded")) or any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in status.get("conditions") or [])
