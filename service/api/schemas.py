"""What the API answers: one model per answer, so ``/docs`` shows each route's shape and
FastAPI checks every answer against it (a field a route forgets is an error in the test
run, not a surprise in a client)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from envyard.service.find import DaskVerdict
from envyard.service.models import AuditAction
from envyard.service.transitions import ImageState, State

#: A time as the API has always written it: ISO 8601 with its offset (``+00:00``).
Time = Annotated[dt.datetime, PlainSerializer(lambda t: t.isoformat(), return_type=str)]


class Package(BaseModel):
    name: str
    version: str
    manager: Literal["conda", "pip"]


class Artifact(BaseModel):
    path: str = Field(description="Where it is: relative to the volume unless you are a "
                      "namespace admin, or a store URI.")
    bytes: int | None


class VersionSummary(BaseModel):
    namespace: str
    name: str
    number: int
    kind: Literal["spec", "lock"] = Field(description="spec: solved here; lock: pushed")
    state: State
    created_at: Time
    started_at: Time | None
    finished_at: Time | None
    spec_sha256: str | None
    error: str | None
    message: str | None = Field(description="Why: what its submitter said (--message).")
    submitted_by: str | None = Field(description="Who submitted or pushed it.")
    held: bool = Field(description="Held: never collected.")
    prefix_bytes: int | None = Field(description="The installed environment's size.")
    dask_verdict: DaskVerdict = Field(description="Its Dask pin check: ok, mismatch, none "
                                      "(no distributed), unchecked (no pins, or not built).")


class Image(BaseModel, extra="allow"):
    state: ImageState
    repository: str
    reference: str | None = None
    digest: str | None = None
    error: str | None = None


class VersionDetail(VersionSummary):
    timings: dict[str, float] = Field(description="Seconds per timed stage: solve, install, "
                                      "pack.")
    fingerprint: str | None = Field(description="The prefix's identity: identical locks "
                                    "share one prefix.")
    pack_bytes: int | None
    packages: list[Package]
    dask: dict[str, Any] | None = Field(description="The Dask pin check: applies, ok, "
                                        "lockstep and a verdict per package.")
    image: Image | None
    artifacts: dict[str, Artifact] = Field(description="spec, lock, log, prefix, pack.")
    current: bool = Field(description="Whether this is the environment's current version.")
    solve: Literal["minimal", "full"] | None = Field(
        description="How the spec was solved: minimal (keeping what it could of version "
        "base_version), full (fresh); none for a pushed lock.")
    base_version: int | None
    preview: str | None = Field(description="The preview whose lock this version builds.")
    stopped_in: Literal["read", "solve", "check", "install", "pack", "publish", "image"] | None \
        = Field(description="The stage a failed or cancelled build stopped in.")


class EnvironmentOut(BaseModel):
    namespace: str
    name: str
    description: str | None
    current_version: int | None
    kernel: str | None = Field(description="The kernelspec of the current version.")
    kernel_name: str | None = Field(description="Its name (what a notebook records).")
    kernel_display_name: str | None = Field(description="What the launcher shows.")
    versions: list[VersionSummary]


class DescriptionSet(BaseModel):
    namespace: str
    name: str
    description: str | None


class Deleted(BaseModel):
    namespace: str
    deleted: list[str] = Field(description="The environments deleted.")
    versions: int = Field(description="Their versions, collected by the next GC.")
    released_holds: list[str]
    cancelled_builds: int


class EnvironmentRow(BaseModel):
    namespace: str
    name: str
    current_version: int | None
    latest_version: int | None
    latest_state: State | None
    latest_spec_sha256: str | None


class FoundEnvironment(BaseModel):
    """An environment a find matched."""

    namespace: str
    name: str
    description: str | None
    current_version: int | None = Field(description="The version its users get; null: "
                                        "none is ready yet.")
    current_state: State | None
    dask: DaskVerdict | None = Field(
        description="The current version's Dask pin check: ok, mismatch (a required package "
        "or the dask/distributed lockstep differs), none (no distributed), unchecked "
        "(built without cluster pins); null without a current version.")
    current_bytes: int | None = Field(description="The current version's installed size.")
    latest_version: int | None = Field(description="The newest version (what the last "
                                       "submission made): what state= filters on.")
    latest_state: State | None
    updated_at: Time | None = Field(description="When the newest version finished, or was "
                                    "submitted if it has not.")
    updated_by: str | None = Field(description="Who submitted the newest version.")


class FoundPage(BaseModel):
    environments: list[FoundEnvironment] = Field(description="Ordered by namespace, "
                                                 "then name.")
    next: str | None = Field(description="Pass as cursor= for the next page; null: this "
                             "is the last.")


class PackageMatch(BaseModel):
    name: str
    channel: str = Field(description="The first configured channel that has it (the one "
                         "a build takes it from).")
    latest: str
    versions: list[str] = Field(description="Its newest versions there, newest first.")


class PackageSearch(BaseModel):
    platform: str
    packages: list[PackageMatch] = Field(description="Names starting with the search "
                                         "first, then names containing it.")


class NamespaceRow(BaseModel):
    name: str


class MemberOut(BaseModel):
    who: str = Field(description="A token (with its owner), a hub user or group, every "
                     "hub user or hub admins.")
    role: Literal["viewer", "developer", "admin"]
    via: Literal["token", "hub grant", "hub admins", "shared"]
    expires_at: Time | None = Field(description="A token's expiry; null: never, or not "
                                    "a token.")


#: A hub user or group name as sharing accepts it (hub names: letters, digits, . _ @ + -).
HUB_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$"


class ShareIn(BaseModel):
    """Give one hub user or one hub group a role on the namespace."""

    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(None, pattern=HUB_NAME, description="A hub user's name.")
    group: str | None = Field(None, pattern=HUB_NAME, description="A hub group's name.")
    role: Literal["viewer", "developer", "admin"]

    @model_validator(mode="after")
    def _one_subject(self) -> ShareIn:
        if (self.user is None) == (self.group is None):
            raise ValueError("name exactly one of 'user' and 'group'")
        return self


class Members(BaseModel):
    namespace: str
    members: list[MemberOut] = Field(description="Strongest role first.")


class NamespaceOut(BaseModel):
    name: str
    environments: list[EnvironmentRow]


class Accepted(BaseModel):
    """A submission queued (or, for a retried Idempotency-Key, the version it made)."""

    namespace: str
    name: str
    version: int
    state: State
    url: str


class CancelOut(BaseModel):
    namespace: str
    name: str
    number: int
    state: State | Literal["cancelling"] = Field(
        description="cancelling: it stops at its next stage or download chunk")


class CurrentOut(BaseModel):
    namespace: str
    name: str
    current_version: int
    kernel: str
    image: str


class HoldOut(BaseModel):
    namespace: str
    name: str
    number: int
    held: bool


class WhoAmI(BaseModel):
    name: str
    roles: dict[str, Literal["viewer", "developer", "admin"]]
    csrf_token: str | None = Field(None, description="For a browser logged in by cookie: "
                                   "send it as X-CSRF-Token with every write.")


class TokenOut(BaseModel):
    """A token as its owner sees it: never its secret nor its hash."""

    id: int
    name: str
    roles: dict[str, Literal["viewer", "developer", "admin"]]
    created_at: Time
    expires_at: Time | None = Field(description="None: never (a token made with "
                                    "`envyard token create` on the server).")
    current: bool = Field(description="Whether this request was made with it.")


class TokenCreated(TokenOut):
    token: str = Field(description="The secret: shown this once, only its hash is kept.")


class TokenList(BaseModel):
    tokens: list[TokenOut] = Field(description="Your tokens (the person the caller acts "
                                   "for), expired ones too, oldest first.")


class TokenRevoked(BaseModel):
    revoked: list[int] = Field(description="The ids revoked: the token, and with a token "
                               "that owns itself every token made with it.")


class RetentionSet(BaseModel):
    namespace: str
    environment: str | None
    keep_last: int | None
    keep_days: float | None
    failed_log_days: float | None


class QuotaSet(BaseModel):
    namespace: str
    quota_bytes: int | None


class Pins(BaseModel):
    versions: dict[str, str]
    source: str


class NamespaceDask(BaseModel):
    namespace: str
    policy: Literal["warn", "block"]
    follow: bool


class EnvironmentDask(BaseModel):
    namespace: str
    name: str
    follow: bool | None


class NamespaceImages(BaseModel):
    namespace: str
    images: bool


class EnvironmentImages(BaseModel):
    namespace: str
    name: str
    images: bool | None


class ImageQueued(BaseModel):
    namespace: str
    name: str
    version: int
    image: ImageState


class PlanRow(BaseModel):
    namespace: str
    name: str
    number: int
    state: State
    delete: bool
    reason: str = Field(description="The rule that keeps or deletes it.")
    bytes: int = Field(description="Bytes deleting it frees (files no kept version shares).")


class DeletionPlan(BaseModel):
    """What deleting an environment would do (nothing is deleted)."""

    namespace: str
    name: str
    versions: list[PlanRow] = Field(description="Every version that still has files: "
                                    "all collected by the next GC.")
    bytes: int = Field(description="What collecting them frees (files other kept "
                       "versions share are not counted).")
    held: list[int] = Field(description="Held versions: the delete needs force=true and "
                            "releases them.")
    building: list[int] = Field(description="Versions being built: cancelled.")


class QueuedBuild(BaseModel):
    namespace: str
    name: str
    number: int
    state: State
    claimed_by: str | None = Field(description="The runner (or job/<name>) building it; "
                                   "null: waiting for one.")
    created_at: Time
    started_at: Time | None
    submitted_by: str | None
    cancelling: bool


class RunnerOut(BaseModel):
    id: str
    kind: Literal["local", "kubernetes"]
    concurrency: int = Field(description="Builds this replica runs at once (local).")
    pending: int = Field(description="Builds queued or running in this replica.")


class QueueOut(BaseModel):
    runner: RunnerOut = Field(description="This replica's runner.")
    runners: list[str] = Field(description="Ids of every runner alive on the volume.")
    builds: list[QueuedBuild] = Field(description="Unfinished builds, oldest first "
                                      "(at most 1,000).")


class Health(BaseModel):
    status: str


class Leftover(BaseModel):
    path: str = Field(description="Relative to the volume.")
    kind: str
    bytes: int


class Leftovers(BaseModel):
    bytes: int
    files: list[Leftover]


class GcDone(BaseModel):
    deleted: list[str] = Field(description="NAMESPACE/NAME/NUMBER of each version whose "
                               "files were removed.")
    pruned_cache_entries: int
    pruned_image_blobs: int
    removed_leftovers: list[Leftover]
    planned: list[PlanRow]


class EnvironmentUsage(BaseModel):
    bytes: int
    prefixes: int


class NamespaceUsage(BaseModel):
    bytes: int = Field(description="Files shared by prefixes count once.")
    environments: dict[str, EnvironmentUsage]
    quota_bytes: int | None


class WhatIfRow(BaseModel):
    environment: str
    current: dict[str, str | None] = Field(description="python, dask and distributed now.")
    would_be: dict[str, str | None] | None
    solvable: bool
    conflict: str | None


class Submitted(BaseModel):
    environment: str
    version: int


class Upgrade(BaseModel):
    rows: list[WhatIfRow]
    submitted: list[Submitted] | None = Field(None, description="With apply: the versions "
                                              "built for the new pins.")
    pins: str | None = None


class PackageChange(BaseModel):
    name: str
    manager: Literal["conda", "pip"]
    kind: Literal["added", "removed", "major", "minor", "patch", "build", "other"] = Field(
        description="major, minor or patch: the first version segment that differs; build: "
        "the same version, another build")
    before: str | None
    after: str | None
    before_build: str | None
    after_build: str | None
    direction: Literal["up", "down", "same"] | None


class LockDiffOut(BaseModel):
    """What moving from one lock to another changes on the service's platform."""

    platform: str
    summary: dict[str, int] = Field(description="How many were added, removed, and changed "
                                    "by kind.")
    added: list[PackageChange]
    removed: list[PackageChange]
    changed: list[PackageChange]


class VersionDiff(LockDiffOut):
    """What moving from version ``a`` to version ``b`` changes on the service's platform."""

    namespace: str
    name: str
    a: int
    b: int


class QuotaEstimate(BaseModel):
    used_bytes: int | None = Field(description="What the namespace uses now.")
    quota_bytes: int | None = Field(description="Its quota; none: no quota.")
    estimate_bytes: int | None = Field(description="The archives of the packages no live "
                                       "version of the namespace has yet.")
    fits: bool


class PreviewDask(BaseModel):
    applies: bool
    ok: bool
    lockstep: str | None
    verdicts: list[dict[str, Any]]
    policy: Literal["warn", "block"]
    builds: bool = Field(description="False: the namespace's policy would refuse the build.")


class PreviewOut(BaseModel):
    """A spec solved as its build would be, and what it changes; build it with
    ``POST …/versions?preview=<id>`` before ``expires_at``."""

    preview: str = Field(description="The id to build this exact lock with.")
    namespace: str
    name: str
    expires_at: Time
    solve: Literal["minimal", "full"]
    base_version: int | None = Field(description="The current version the diff is "
                                     "against (and, for minimal, solved on); none: new.")
    lock_url: str
    diff: LockDiffOut
    dask: PreviewDask | None = Field(description="The Dask pin check; none: no pins set.")
    quota: QuotaEstimate


class AuditEventOut(BaseModel):
    """One change: who made it, when, and to what."""

    id: int
    at: Time
    actor: str = Field(description="Who: a token's, a hub user's or the service's name, "
                       "as a version's submitted_by says it.")
    action: AuditAction
    namespace: str | None = Field(description="None: a service-wide change (the cluster's "
                                  "pins, an upgrade, GC).")
    environment: str | None
    version: int | None
    detail: dict[str, Any] = Field(description="What changed, in a few values: the new "
                                   "quota, the version rolled back from, force …")


class AuditPage(BaseModel):
    events: list[AuditEventOut] = Field(description="Newest first.")
    next: str | None = Field(description="The cursor of the next (older) page, with the "
                             "same filters; null: this is the last page.")


class ClusterEnvironmentOut(BaseModel):
    environment: str = Field(description="namespace/name: the value of a gateway's "
                             "'environment' option.")
    namespace: str
    name: str
    version: int = Field(description="Its current version, which a cluster started now "
                         "runs.")
    prefix: str = Field(description="That version's prefix, links resolved (relative to "
                        "the volume unless you are a namespace admin).")
    image: str | None = Field(description="That version's image, when it has a ready one "
                              "(for Kubernetes backends).")
    gateway: bool = Field(description="It has dask-gateway (the scheduler loads its "
                          "preload).")
    verdict: Literal["ok", "mismatch", "unchecked"] = Field(
        description="Its lock against the cluster's pins in force now.")
    problem: str | None = Field(description="Why a gateway must refuse it, in one line.")
    offered: bool = Field(description="A gateway offers it: no problem.")


class ClusterEnvironments(BaseModel):
    user: str = Field(description="Whose reading: the caller, or the hub user asked for.")
    environments: list[ClusterEnvironmentOut] = Field(
        description="Readable environments whose current version has distributed, by "
        "namespace and name.")


class SpawnEnvironmentOut(BaseModel):
    environment: str = Field(description="namespace/name: the choice at spawn (the "
                             "'environment' option, a KubeSpawner profile's slug).")
    namespace: str
    name: str
    version: int = Field(description="Its current version, which a server started now "
                         "runs.")
    kernel_name: str = Field(description="The kernelspec that becomes the server's "
                             "default kernel.")
    display_name: str
    prefix: str = Field(description="The environment's current prefix (its 'current' "
                        "link, relative to the volume unless you are a namespace admin).")
    image: str | None = Field(description="That version's image, when it has a ready one.")
    profile: dict[str, Any] | None = Field(description="A KubeSpawner profile_list entry "
                                           "running the image; null without an image.")


class SpawnEnvironments(BaseModel):
    environments: list[SpawnEnvironmentOut] = Field(
        description="Readable environments whose current version is ready and has a "
        "kernel, by namespace and name.")


class PlatformPackOut(BaseModel):
    platform: str = Field(description="A platform the version's lock covers.")
    conda_packages: int = Field(description="The lock's conda packages for it (noarch too).")
    pip_packages: int
    available: bool = Field(description="Whether its pack is made already (else the first "
                            "download makes it).")
    bytes: int | None = Field(description="The pack's size, once made.")
    url: str = Field(description="Where to download it (a .tar with an unpack script).")


class VersionPlatforms(BaseModel):
    namespace: str
    name: str
    number: int
    service_platform: str = Field(description="The platform the service installs the "
                                  "version on (its conda-pack is at …/pack).")
    platforms: list[PlatformPackOut] = Field(description="Every platform of the lock, in "
                                             "the lock's order.")
