"""Policies and where their values come from: one resolver for every override.

A policy has up to three layers: the service's setting, the namespace's override and
the environment's override; the most specific layer that sets a value wins. ``resolve``
is that rule, written once; ``for_environment`` and ``for_namespace`` apply it to every
policy (retention, Dask follow, images, the build Job's profile, quota, the system an
environment targets) and say, for each value, which layer it came from, so ``GET …/policy``
shows what a build or GC will do. For the system (``system_requirements``) the environment's
layer is its spec's own word (``system-requirements:`` or ``CONDA_OVERRIDE_*``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from envyard.builder.errors import SpecError
from envyard.builder.retention import Rules
from envyard.builder.spec import EnvSpec, parse_spec
from envyard.builder.virtual import SYSTEM_KEYS, SystemRequirements
from envyard.service.models import Environment, Namespace, RetentionRule, Version
from envyard.service.settings import JobProfile, Settings

T = TypeVar("T")
Layer = Literal["service", "namespace", "environment"]


@dataclass(frozen=True)
class Effective(Generic[T]):
    """A policy's value in force, and the layer that set it."""

    value: T
    source: Layer


def resolve(default: T, *overrides: tuple[Layer, T | None]) -> Effective[T]:
    """The service's ``default`` unless a later (more specific) layer sets a value."""
    found: Effective[T] = Effective(default, "service")
    for layer, value in overrides:
        if value is not None:
            found = Effective(value, layer)
    return found


RetentionRules = Mapping[tuple[str, str], RetentionRule]


def retention(settings: Settings, rules: RetentionRules, namespace: str,
              name: str | None = None) -> dict[str, Effective[Any]]:
    """keep_last, keep_days and failed_log_days for an environment (or a namespace)."""
    layers: list[tuple[Layer, RetentionRule | None]] = [("namespace", rules.get((namespace, "")))]
    if name is not None:
        layers.append(("environment", rules.get((namespace, name))))
    return {field: resolve(getattr(settings, field),
                           *((layer, getattr(r, field) if r else None) for layer, r in layers))
            for field in ("keep_last", "keep_days", "failed_log_days")}


def retention_rules(settings: Settings, rules: RetentionRules, namespace: str,
                    name: str) -> Rules:
    """The retention GC applies to one environment."""
    found = retention(settings, rules, namespace, name)
    return Rules(found["keep_last"].value, found["keep_days"].value,
                 found["failed_log_days"].value)


def load_rules(session: Session, namespaces: Iterable[str] | None = None) -> RetentionRules:
    query = select(RetentionRule)
    if namespaces is not None:
        query = query.where(RetentionRule.namespace.in_(list(namespaces)))
    return {(r.namespace, r.environment): r for r in session.scalars(query)}


def dask_follow(env: Environment | None, ns: Namespace) -> Effective[bool]:
    """Whether builds are locked within the cluster's pins (off by default)."""
    return resolve(False, ("namespace", ns.dask_follow),
                   ("environment", env.dask_follow if env is not None else None))


def dask_policy(ns: Namespace) -> Effective[str]:
    """What a required Dask mismatch does to a build: warn (the default) or block it."""
    return resolve("warn", ("namespace", ns.dask_policy))


def images(settings: Settings, env: Environment | None, ns: Namespace) -> Effective[bool]:
    """Whether ready versions get an image: never without a registry."""
    if not settings.image.registry:
        return Effective(False, "service")
    return resolve(False, ("namespace", ns.images),
                   ("environment", env.images if env is not None else None))


def job_profile(settings: Settings, namespace: str, gpu: bool = False
                ) -> Effective[JobProfile]:
    """A build Job's resources and placement: for an environment that targets CUDA
    (``gpu``) the GPU profile if the service has one, so it builds on a GPU node; else
    the namespace's profile, else ``'*'``'s."""
    if gpu and settings.kubernetes.gpu_profile is not None:
        return Effective(settings.kubernetes.gpu_profile, "service")
    profiles = settings.kubernetes.profiles
    if namespace in profiles:
        return Effective(profiles[namespace], "namespace")
    return Effective(profiles.get("*") or JobProfile(), "service")


def quota(ns: Namespace) -> Effective[int | None]:
    """Bytes the namespace may use on the volume (None: no limit)."""
    return resolve(None, ("namespace", ns.quota_bytes))


def namespace_system(ns: Namespace | None) -> SystemRequirements:
    """The system a namespace's environments target where their spec says nothing."""
    return SystemRequirements.of(ns.system_requirements if ns is not None else None)


def system_requirements(ns: Namespace | None, spec: EnvSpec | None = None
                        ) -> dict[str, Effective[str | None]]:
    """Per key (cuda, glibc, macos) the version a build assumes (``""``: none) and who
    said it: the spec, else its namespace, else the service (None: conda-lock's default)."""
    below, own = namespace_system(ns).said(), spec.system.said() if spec else {}
    unset: str | None = None
    return {key: resolve(unset, ("namespace", below.get(key)), ("environment", own.get(key)))
            for key in SYSTEM_KEYS}


def targets_cuda(ns: Namespace | None, spec: EnvSpec | None) -> bool:
    """Whether a spec's build assumes a CUDA version someone asked for (the spec or its
    namespace): conda-lock's default ``__cuda`` does not count, "none" does not either."""
    return bool(system_requirements(ns, spec)["cuda"].value)


def _current_spec(session: Session, env: Environment) -> EnvSpec | None:
    """The spec of the environment's current version, if it has one that still parses."""
    text = session.scalar(select(Version.spec_text).where(
        Version.environment_id == env.id, Version.number == env.current_version))
    try:
        return parse_spec(text, source=f"{env.name}.yml") if text else None
    except SpecError:
        return None


def _shown(found: Mapping[str, Effective[Any]]) -> dict[str, Any]:
    return {name: {"value": e.value.model_dump() if isinstance(e.value, JobProfile)
                   else e.value, "source": e.source} for name, e in found.items()}


def for_namespace(session: Session, settings: Settings, ns: Namespace) -> dict[str, Any]:
    """Every policy in force for the namespace's environments that set no override."""
    return {"namespace": ns.name,
            "retention": _shown(retention(settings, load_rules(session, [ns.name]), ns.name)),
            **_shown({"dask_follow": dask_follow(None, ns),
                      "dask_policy": dask_policy(ns),
                      "images": images(settings, None, ns),
                      "job_profile": job_profile(settings, ns.name),
                      "quota_bytes": quota(ns)}),
            "system_requirements": _shown(system_requirements(ns))}


def for_environment(session: Session, settings: Settings, env: Environment,
                    ns: Namespace) -> dict[str, Any]:
    """Every policy in force for one environment, each with the layer that set it."""
    rules = load_rules(session, [ns.name])
    spec = _current_spec(session, env)
    return {"namespace": ns.name, "name": env.name,
            "retention": _shown(retention(settings, rules, ns.name, env.name)),
            **_shown({"dask_follow": dask_follow(env, ns),
                      "dask_policy": dask_policy(ns),
                      "images": images(settings, env, ns),
                      "job_profile": job_profile(settings, ns.name, targets_cuda(ns, spec)),
                      "quota_bytes": quota(ns)}),
            "system_requirements": _shown(system_requirements(ns, spec))}


__all__ = ["Effective", "dask_follow", "dask_policy", "for_environment", "for_namespace", "images",
           "job_profile", "load_rules", "namespace_system", "quota", "resolve", "retention",
           "retention_rules", "system_requirements", "targets_cuda"]
