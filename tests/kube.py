"""A Kubernetes API for tests (kmock's emulator on 127.0.0.1) and a stand-in kubelet.

No Kubernetes runs here, so ``Kubelet`` plays the node and the Job controller from the
Job's own spec: it runs the pod's command (the real ``envyard worker``) with the pod's
env, retries failed pods up to ``backoffLimit``, applies ``podFailurePolicy`` exit-code
rules, and writes the Job's status the way Kubernetes does (``succeeded`` / ``failed``
with a ``Complete`` or ``Failed`` condition and its reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.servers import ENVYARD


class KubeAPI:
    """kmock.KubernetesEmulator served on a loopback port from a thread of its own."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="kmock")

    def _run(self) -> None:
        import kmock

        async def serve() -> None:
            async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as srv:
                emulator.resources["batch/v1/jobs"] = {}  # declared, as a cluster has it
                self.url = str(srv.url).rstrip("/")
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()

        try:
            self._loop.run_until_complete(serve())
        finally:
            self._loop.close()

    def start(self) -> KubeAPI:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("kmock did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def batch(self) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        return client.BatchV1Api(client.ApiClient(cfg))


class Kubelet:
    """Runs each new Job's pod as a local process and reports like the Job controller."""

    def __init__(self, api: Any, namespace: str, base_env: dict[str, str], logs: Path
                 ) -> None:
        self.api, self.namespace, self.base_env, self.logs = api, namespace, base_env, logs
        self.runs: dict[str, int] = {}  # pods started per Job
        self.codes: dict[str, list[int]] = {}  # their exit codes
        self.seen: set[str] = set()
        self.paused = False
        #: called with (job name, process) while a pod runs; may kill it (a lost pod)
        self.during: Callable[[str, subprocess.Popen[bytes]], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Kubelet:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kubelet")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            if self.paused:
                continue
            for job in self.api.list_namespaced_job(self.namespace).items:
                name = job.metadata.name
                if name not in self.seen and not (job.status and (
                        job.status.succeeded or job.status.failed)):
                    self.seen.add(name)
                    threading.Thread(target=self.run_job, args=(name,), daemon=True).start()

    def _pod_env(self, container: Any) -> dict[str, str]:
        env = dict(self.base_env)  # what the settings ConfigMap and Secrets would give
        for e in container.env or []:
            if e.value is not None:
                env[e.name] = e.value
        return env

    def run_job(self, name: str) -> None:
        from kubernetes.client import ApiException

        try:
            job = self.api.read_namespaced_job(name, self.namespace)
        except ApiException:
            return
        spec = job.spec
        container = spec.template.spec.containers[0]
        fail_codes = {code for rule in (spec.pod_failure_policy.rules
                                        if spec.pod_failure_policy else [])
                      if rule.action == "FailJob" and rule.on_exit_codes
                      for code in rule.on_exit_codes.values}
        failures = 0
        while True:
            self.runs[name] = self.runs.get(name, 0) + 1
            self._status(name, {"active": 1})
            cmd = [ENVYARD if c == "envyard" else c for c in container.command]
            with open(self.logs / f"{name}.log", "ab") as log:
                proc = subprocess.Popen(cmd, env=self._pod_env(container),
                                        stdout=log, stderr=log)
            if self.during is not None:
                self.during(name, proc)
            code = proc.wait()
            self.codes.setdefault(name, []).append(code)
            if code == 0:
                self._status(name, {"active": 0, "succeeded": 1, "conditions": [
                    {"type": "Complete", "status": "True"}]})
                return
            failures += 1
            if code in fail_codes:
                reason = "PodFailurePolicy"
            elif failures > spec.backoff_limit:
                reason = "BackoffLimitExceeded"
            else:
                continue
            self._status(name, {"active": 0, "failed": failures, "conditions": [
                {"type": "Failed", "status": "True", "reason": reason}]})
            return

    def _status(self, name: str, status: dict[str, Any]) -> None:
        from kubernetes.client import ApiException

        with contextlib.suppress(ApiException):  # deleted meanwhile (cancelled)
            self.api.patch_namespaced_job_status(name, self.namespace, {"status": status})


def kill_when(predicate: Callable[[], bool], *, once: set[str]
              ) -> Callable[[str, subprocess.Popen[bytes]], None]:
    """A ``Kubelet.during`` hook: SIGKILL the first pod of each Job once ``predicate``
    holds, like a node that disappears mid-build."""
    def hook(name: str, proc: subprocess.Popen[bytes]) -> None:
        if name in once:
            return
        once.add(name)
        while proc.poll() is None:
            if predicate():
                os.kill(proc.pid, signal.SIGKILL)
                return
            threading.Event().wait(0.05)
    return hook
