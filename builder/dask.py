"""Dask pin checks: an environment's lock against the versions the cluster runs.

distributed compares, between client, scheduler and workers, the packages in
``distributed.versions`` — required: python, dask, distributed, msgpack, cloudpickle,
tornado, toolz; optional: numpy, pandas, lz4 — and warns on any difference, a package present
on one side only included. Here python is compared by major.minor (patch releases talk to
each other), conda names are mapped to the import names distributed reports, and dask and
distributed must also match each other (they are released in lockstep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from envyard.builder.errors import DaskMismatch, SpecError
from envyard.builder.lock import Lockfile
from envyard.builder.yamlfile import load_yaml, plain

REQUIRED = ("python", "dask", "distributed", "msgpack", "cloudpickle", "tornado", "toolz")
OPTIONAL = ("numpy", "pandas", "lz4")
#: conda package name -> the name distributed reports it under
CONDA_TO_DASK = {"msgpack-python": "msgpack", "dask-core": "dask", "python-lz4": "lz4"}


@dataclass(frozen=True)
class PinSet:
    """The versions the scheduler and workers run, by distributed's package names."""

    versions: dict[str, str]
    source: str = ""

    def get(self, name: str) -> str | None:
        return self.versions.get(name)


@dataclass(frozen=True)
class Verdict:
    package: str
    required: bool
    env: str | None
    cluster: str | None
    verdict: str  # match, mismatch, missing

    @property
    def ok(self) -> bool:
        return self.verdict == "match"


@dataclass(frozen=True)
class DaskReport:
    """Per-package verdicts for one lock and platform; ``applies`` is False without
    distributed in the environment (nothing talks to the cluster)."""

    applies: bool
    verdicts: list[Verdict] = field(default_factory=list)
    lockstep: str | None = None  # why dask and distributed disagree, if they do

    @property
    def blocking(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.required and not v.ok]

    @property
    def warnings(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.required and not v.ok]

    @property
    def ok(self) -> bool:
        return not self.blocking and self.lockstep is None

    def as_dict(self) -> dict[str, object]:
        return {"applies": self.applies, "ok": self.ok, "lockstep": self.lockstep,
                "verdicts": [v.__dict__ for v in self.verdicts]}

    def lines(self) -> list[str]:
        if not self.applies:
            return ["no distributed in this environment: nothing to check"]
        out = [f"{v.package:<12} {v.verdict:<9} env {v.env or '-':<14} cluster "
               f"{v.cluster or '-':<14} {'required' if v.required else 'optional'}"
               for v in self.verdicts]
        if self.lockstep:
            out.append(f"lockstep     {self.lockstep}")
        return out


def _compare(name: str, version: str | None) -> str | None:
    if version is None or name != "python":
        return version
    return ".".join(version.split(".")[:2])


def env_versions(lock: Lockfile, platform: str) -> dict[str, str]:
    """The lock's versions of the packages distributed compares, by distributed's names."""
    out: dict[str, str] = {}
    for p in lock.for_platform(platform):
        name = CONDA_TO_DASK.get(p.name, p.name) if p.manager == "conda" else p.name
        if name in REQUIRED or name in OPTIONAL:
            out.setdefault(name, p.version)
    return out


def check(lock: Lockfile, platform: str, pins: PinSet) -> DaskReport:
    """Verdicts for every required and optional package, with both versions."""
    if platform not in lock.metadata.platforms:
        raise SpecError(f"the lock has no platform {platform}")
    env = env_versions(lock, platform)
    if "distributed" not in env:
        return DaskReport(applies=False)
    verdicts = []
    for name in REQUIRED + OPTIONAL:
        mine, theirs = env.get(name), pins.get(name)
        if mine is None and theirs is None:
            continue
        if mine is None or theirs is None:
            verdict = "missing"
        else:
            verdict = "match" if _compare(name, mine) == _compare(name, theirs) else "mismatch"
        verdicts.append(Verdict(name, name in REQUIRED, mine, theirs, verdict))
    lockstep = None
    if env.get("dask") != env.get("distributed"):
        lockstep = (f"dask {env.get('dask')} and distributed {env.get('distributed')} are "
                    "released in lockstep and must be the same version")
    return DaskReport(True, verdicts, lockstep)


def pins_from_lock(lock: Lockfile, platform: str, source: str = "") -> PinSet:
    """The cluster's pins taken from the lock of the environment its image is built from."""
    return PinSet(env_versions(lock, platform), source)


def read_pins(path: Path) -> PinSet:
    """A pin file of ``package: version`` lines (distributed's names):
    envs/cluster/dask-pins.yml."""
    try:
        data = plain(load_yaml(path.read_bytes(), source=str(path)))
    except OSError as exc:
        raise SpecError(f"cannot read the pin file: {exc.strerror}", source=str(path)) from None
    if not isinstance(data, dict) or not data:
        raise SpecError("a pin file maps package names to versions", source=str(path))
    known = set(REQUIRED + OPTIONAL)
    pins = {}
    for name, version in data.items():
        name = CONDA_TO_DASK.get(str(name), str(name))
        if name not in known:
            raise SpecError(f"'{name}' is not a package distributed compares "
                            f"({', '.join(REQUIRED + OPTIONAL)})", source=str(path))
        pins[name] = str(version)
    return PinSet(pins, str(path))


__all__ = ["DaskMismatch", "DaskReport", "PinSet", "Verdict", "check", "constraints",
           "env_versions", "pins_from_constraints", "pins_from_lock", "read_pins"]


def constraints(pins: PinSet) -> list[str]:
    """The pins as conda constraints, for locking an environment that follows the cluster."""
    names = {v: k for k, v in CONDA_TO_DASK.items() if k != "dask-core"}
    out = []
    for name, version in pins.versions.items():
        spec = f"{_compare(name, version)}.*" if name == "python" else f"=={version}"
        out.append(f"{names.get(name, name)} {spec}")
    return out


def pins_from_constraints(lines: list[str], source: str = "") -> PinSet:
    """The pin set back from ``constraints()`` output (a version built to move the pins is
    checked against the pins it was built for)."""
    versions = {}
    for line in lines:
        name, _, spec = line.partition(" ")
        name = CONDA_TO_DASK.get(name, name)
        versions[name] = spec.removeprefix("==").removesuffix(".*")
    return PinSet(versions, source)
