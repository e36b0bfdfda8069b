"""The Kubernetes runner: every build is a Job (``service.kube_jobs``) on the cluster.

The Job's name is the version's claim: Kubernetes refuses a second Job of one name, so
however many service replicas race, a version gets one Job; the replica that created it
records the claim (``job/<name>``). Every replica follows the Jobs (a list every
``poll_seconds``) and reconciles them with the database, at start too: a finished Job
whose version did not finish fails it with the Job's reason (deadline, retries spent); a
running Job of a cancelled or deleted version is deleted; a claimed version whose Job is
gone is queued again (if it never started) or failed as interrupted. Logs need nothing:
the pod writes them on the shared volume, where the API reads them while it runs.
A Job still running after its worker recorded ready or failed is left to finish.
Stopping a replica leaves its Jobs running. A version that targets CUDA (its spec or its
namespace names a CUDA version, or a pushed lock has a package needing ``__cuda``) is
given the GPU profile when the settings have one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select, update

from envyard.builder.errors import EnvyardError
from envyard.builder.lock import parse_lock
from envyard.builder.spec import parse_spec
from envyard.service import policy
from envyard.service.buildlog import BuildLog
from envyard.service.buildstate import BuildContext
from envyard.service.jobs import restore_volume
from envyard.service.kube_jobs import (
    MANAGED,
    VERSION_LABEL,
    claim_of,
    failure_reason,
    job_manifest,
    job_name,
    succeeded,
)
from envyard.service.models import Environment, Namespace, Version, utcnow
from envyard.service.runners import RunnerLock, claim, settle, unclaimed
from envyard.service.settings import KubernetesSettings
from envyard.service.transitions import LIVE, State, become
from envyard.service.upgrade import settle_pin_moves

logger = logging.getLogger("envyard")

ACTIVE = list(LIVE)
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
STOPPED = {State.cancelled, State.deleting, State.deleted}
GONE = "interrupted: its Kubernetes Job disappeared; submit again"


def batch_api(k: KubernetesSettings) -> Any:
    """The official client's BatchV1Api: at ``api_url`` (tests, ``kubectl proxy``) or with
    the pod's in-cluster service account."""
    from kubernetes import client, config

    if k.api_url:
        cfg = client.Configuration()
        cfg.host = k.api_url.rstrip("/")
        return client.BatchV1Api(client.ApiClient(cfg))
    config.load_incluster_config()
    return client.BatchV1Api()


class KubernetesRunner:
    """Creates, follows, cancels and reconciles build Jobs."""

    def __init__(self, ctx: BuildContext, api: Any = None) -> None:
        self.ctx = ctx
        self.k = ctx.settings.kubernetes
        self.api = api if api is not None else batch_api(self.k)
        self.runner = RunnerLock(ctx.layout.root)  # image rebuilds run in this process
        self._images = ThreadPoolExecutor(ctx.settings.build_concurrency,
                                          thread_name_prefix="envyard-image")
        self._stop = threading.Event()
        self._wake = threading.Event()

    @property
    def id(self) -> str:
        return self.runner.id

    @property
    def pending(self) -> int:
        """Versions whose Job is queued or running."""
        with self.ctx.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Version).where(
                Version.claimed_by.like("job/%"), Version.state.in_(ACTIVE))) or 0)

    def submit(self, version_id: int) -> None:
        """Create the version's Job now if fewer than ``max_jobs`` run; else the poll
        loop creates it when one finishes."""
        try:
            if self.pending < self.k.max_jobs:
                self._launch(version_id)
        except Exception as exc:  # the API server may be away: the poll loop retries
            logger.warning("could not create the Job of version %s: %s: %s", version_id,
                           type(exc).__name__, exc)

    def _launch(self, version_id: int) -> bool:
        from kubernetes.client import ApiException

        with self.ctx.db.session() as s:
            row = s.execute(select(Version.number, Version.state, Version.claimed_by,
                                   Environment.name, Namespace.name)
                            .join(Environment, Version.environment_id == Environment.id)
                            .join(Namespace, Environment.namespace_id == Namespace.id)
                            .where(Version.id == version_id)).first()
        if row is None or row[1] != State.queued or row[2] is not None:
            return False
        number, _, _, name, namespace = row
        try:
            self.api.create_namespaced_job(self.k.namespace, job_manifest(
                self.ctx.settings, version_id, namespace, name, number,
                gpu=self._targets_cuda(version_id)))
        except ApiException as exc:
            if exc.status != 409:  # 409: another replica created it first
                raise
        return claim(self.ctx.db, version_id, claim_of(version_id))

    def _targets_cuda(self, version_id: int) -> bool:
        """Whether the version's build needs a GPU node: its spec or its namespace names a
        CUDA version, or its pushed lock has a package that needs ``__cuda``. Only asked
        when there is a GPU profile; an input that does not parse fails in its build."""
        if self.k.gpu_profile is None:
            return False
        with self.ctx.db.session() as s:
            v = s.get(Version, version_id)
            if v is None:
                return False
            ns, kind, spec_text, lock_text = (v.environment.namespace, v.kind, v.spec_text,
                                              v.lock_text)
            try:
                if kind == "spec" and spec_text is not None:
                    return policy.targets_cuda(ns, parse_spec(spec_text))
                if lock_text is not None:
                    platform = self.ctx.settings.build_platform()
                    return any("__cuda" in p.dependencies
                               for p in parse_lock(lock_text).for_platform(platform))
            except (EnvyardError, ValueError):
                return False
        return False

    def _jobs(self) -> dict[int, dict[str, Any]]:
        listed = self.api.list_namespaced_job(self.k.namespace, label_selector=SELECTOR)
        jobs = {}
        for item in listed.items:
            job = self.api.api_client.sanitize_for_serialization(item)
            labels = job["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in MANAGED.items()) and \
                    labels.get(VERSION_LABEL, "").isdigit():
                jobs[int(labels[VERSION_LABEL])] = job
        return jobs

    def reconcile(self) -> None:
        """Bring Jobs and versions into agreement (see the module's docstring)."""
        with self.ctx.db.session() as s:  # read before listing: a claim implies its Job
            claimed = dict(s.execute(select(Version.id, Version.state).where(
                Version.claimed_by.like("job/%"), Version.state.in_(ACTIVE))).all())
        jobs = self._jobs()
        with self.ctx.db.session() as s:
            rows = {vid: (state, owner) for vid, state, owner in s.execute(
                select(Version.id, Version.state, Version.claimed_by)
                .where(Version.id.in_(list(jobs))))}
        for vid, job in jobs.items():
            state, owner = rows.get(vid, (None, None))
            reason = failure_reason(self.ctx.settings, job)
            finished = reason is not None or succeeded(job)
            if state is None or state in STOPPED:
                if not finished:
                    self._delete(vid)  # cancelled or collected while it ran
            elif State(state).terminal:
                pass  # the worker recorded its result; its pod is exiting
            elif finished:
                self._fail(vid, reason or "its Kubernetes Job ended without a result")
            elif owner is None:
                claim(self.ctx.db, vid, claim_of(vid))  # its creator died before claiming
        for vid, state in claimed.items():
            if vid in jobs:
                continue
            if state == State.queued:
                with self.ctx.db.session(write=True) as s:
                    s.execute(update(Version).where(
                        Version.id == vid, Version.state == State.queued,
                        Version.claimed_by == claim_of(vid)).values(claimed_by=None))
            else:
                self._fail(vid, GONE)

    def _fail(self, version_id: int, error: str, state: State = State.failed) -> None:
        """Finish a version the Job did not finish, and say why in its log."""
        with self.ctx.db.session(write=True) as s:
            v = s.get(Version, version_id, with_for_update=True)
            if v is None or State(v.state).terminal:
                return
            become(v, state, error=error, finished_at=utcnow())
            where = (v.environment.namespace.name, v.environment.name, v.number)
        BuildLog(self.ctx.layout.build_dir(*where) / "build.log").line(
            "cancelled" if state == State.cancelled else f"error: {error}")

    def _delete(self, version_id: int) -> None:
        from kubernetes.client import ApiException

        try:
            self.api.delete_namespaced_job(job_name(version_id), self.k.namespace,
                                           propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def cancel(self, version_id: int) -> None:
        """Delete the Job (its pod goes with it), then mark the version cancelled."""
        self._delete(version_id)
        self._fail(version_id, "cancelled", State.cancelled)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.k.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception as exc:  # the API server or database may be briefly away
                logger.warning("Kubernetes runner poll failed: %s: %s", type(exc).__name__,
                               exc)

    def step(self) -> None:
        """One look: settle dead replicas' image builds, reconcile, launch what fits,
        move the Dask pins of upgrades whose builds ended."""
        settle(self.ctx.db, self.runner.dead_runners())
        self.reconcile()
        free = self.k.max_jobs - self.pending
        for version_id in unclaimed(self.ctx.db, free) if free > 0 else ():
            self._launch(version_id)
        settle_pin_moves(self.ctx.db)  # applied Dask upgrades whose builds ended

    def recover(self) -> None:
        restore_volume(self.ctx)
        try:
            self.step()
        except Exception as exc:  # the API server may be starting too: the loop retries
            logger.warning("Kubernetes runner: first look failed: %s: %s",
                           type(exc).__name__, exc)
        threading.Thread(target=self._poll, daemon=True, name="envyard-kube-runner").start()

    def run_image(self, stage: Callable[[], None]) -> None:
        """Image rebuilds asked through the API run here, ``build_concurrency`` at once."""
        self._images.submit(stage)

    def shutdown(self, grace: float = 0.0) -> None:
        """Stop following; the Jobs keep running and the next replica follows them (an
        image rebuild of this process is settled as interrupted)."""
        self._images.shutdown(wait=False, cancel_futures=True)
        self._stop.set()
        self._wake.set()
        settle(self.ctx.db, [self.runner.id])
        self.runner.release()
