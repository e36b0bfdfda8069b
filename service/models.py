"""The database: SQLAlchemy 2 typed models. Migrations live in ``service/migrations``.

A version is immutable once built; ``Environment.version_counter`` hands out numbers under
the row's write lock, so concurrent submissions get 1, 2, 3 … with none lost or repeated.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from envyard.service.transitions import State


def state_column(constraint: str) -> Enum:
    """A version's state as the database holds it: the values of ``State`` under a CHECK
    constraint, so no writer (a migration, a hand-made UPDATE) stores another word."""
    return Enum(State, name=constraint, native_enum=False, length=16, create_constraint=True,
                validate_strings=True, values_callable=lambda states: [s.value for s in states])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(t: dt.datetime) -> dt.datetime:
    """A stored time with its zone: SQLite drops it, and stored values are UTC."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class Role(enum.StrEnum):
    viewer = "viewer"
    developer = "developer"
    admin = "admin"

    def allows(self, needed: Role) -> bool:
        order = [Role.viewer, Role.developer, Role.admin]
        return order.index(self) >= order.index(needed)


class AuditAction(enum.StrEnum):
    """What an audit event says was done (``service.audit``). Stored as text without a
    CHECK constraint, so a new kind of write adds a member here and no migration."""

    submit = "submit"  # a spec, as a new version
    push = "push"  # a lock, as a new version
    rebuild = "rebuild"  # an earlier version's spec solved again, as a new version
    reinstall = "reinstall"  # an earlier version's lock installed again, as a new version
    rollback = "rollback"  # current moved to another ready version
    hold = "hold"
    unhold = "unhold"
    cancel = "cancel"
    describe = "describe"  # an environment's description set or removed
    delete_environment = "delete_environment"
    delete_namespace = "delete_namespace"
    retention = "retention"  # a namespace's or an environment's retention override
    quota = "quota"
    dask_policy = "dask_policy"  # a namespace's policy and follow, an environment's follow
    dask_pins = "dask_pins"  # the cluster's pin set replaced (or moved by an upgrade)
    dask_upgrade = "dask_upgrade"  # an upgrade applied: versions submitted on new pins
    images_policy = "images_policy"  # images on or off for a namespace or environment
    system_requirements = "system_requirements"  # the system a namespace's builds assume
    channels = "channels"  # a namespace's own narrowing of the channel allow-list
    image_build = "image_build"  # a ready version's image (re)built on request
    gc = "gc"  # a collection that marked versions (or that someone asked for)
    token_create = "token_create"
    token_revoke = "token_revoke"  # a token (and, for a self-owned one, what it made)
    share = "share"  # a hub user or group given a role on a namespace by its admin
    unshare = "unshare"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Namespace(Base):
    __tablename__ = "namespaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # overrides of the service's defaults, None: not set (``service.policy`` resolves them)
    dask_policy: Mapped[str | None] = mapped_column(String(8), default=None)
    dask_follow: Mapped[bool | None] = mapped_column(default=None)
    images: Mapped[bool | None] = mapped_column(default=None)
    #: channel patterns narrowing the service's ``allowed_channels`` (None: not narrowed)
    allowed_channels: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    #: the system its environments target unless their spec says (``{cuda: "12.4"}``;
    #: ``""``: none), as ``builder.virtual.SystemRequirements`` reads it (None: not set)
    system_requirements: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    environments: Mapped[list[Environment]] = relationship(back_populates="namespace")


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"))
    name: Mapped[str] = mapped_column(String(64))
    current_version: Mapped[int | None] = mapped_column(default=None)
    version_counter: Mapped[int] = mapped_column(default=0)
    dask_follow: Mapped[bool | None] = mapped_column(default=None)  # None: the namespace's
    images: Mapped[bool | None] = mapped_column(default=None)  # None: the namespace's
    description: Mapped[str | None] = mapped_column(Text, default=None)
    #: set by a delete: gone from listings and kernels, every version collectable; the
    #: rows stay as the record (a later submission under the name brings it back)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                           default=None)
    #: every version numbered up to this was deleted with the environment: GC collects
    #: them even after a submission under the name brought the environment back
    collect_through: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    namespace: Mapped[Namespace] = relationship(back_populates="environments")
    versions: Mapped[list[Version]] = relationship(back_populates="environment",
                                                   order_by="Version.number")


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("environment_id", "number"),
                      Index("ix_versions_state", "state"),
                      Index("ix_versions_idempotency", "environment_id", "idempotency_key",
                            unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))  # "spec" or "lock"
    state: Mapped[State] = mapped_column(state_column("version_state"),
                                         default=State.queued)
    spec_text: Mapped[str | None] = mapped_column(Text, default=None)
    spec_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    lock_text: Mapped[str | None] = mapped_column(Text, default=None)
    fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    packages: Mapped[list[Any] | None] = mapped_column(default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    held: Mapped[bool] = mapped_column(default=False, server_default=false())
    constraints: Mapped[list[Any] | None] = mapped_column(default=None)
    dask_report: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    image: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # state, ref, digest…
    #: who answers for the version's unfinished work (its build, or a ready version's image
    #: build): a service process's runner id, or ``job/<name>`` for a Kubernetes Job; if
    #: that owner dies, whoever notices settles the work (``runners.settle``)
    claimed_by: Mapped[str | None] = mapped_column(String(32), default=None)
    #: set by a cancel of a running build; its builder, in whatever process, stops
    cancel_requested_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), default=None)
    #: how a spec was solved: "minimal" (on the lock of ``base_version``, moving only what
    #: the edit needs) or "full" (fresh); None for a pushed lock
    solve: Mapped[str | None] = mapped_column(String(8), default=None)
    base_version: Mapped[int | None] = mapped_column(default=None)
    #: the preview whose lock this version builds as it is (no solve of its own)
    preview: Mapped[str | None] = mapped_column(String(32), default=None)
    #: the stage (``stages.STAGES``' names) a failed or cancelled build stopped in
    stopped_in: Mapped[str | None] = mapped_column(String(16), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)  # why, by who submitted
    submitted_by: Mapped[str | None] = mapped_column(String(100), default=None)  # a name
    #: sha256 of the client's Idempotency-Key: a retried submission finds this version
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    state_before_gc: Mapped[State | None] = mapped_column(
        state_column("version_state_before_gc"), default=None)
    prefix_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    pack_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                           default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                            default=None)

    environment: Mapped[Environment] = relationship(back_populates="versions")
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="version")


class Preview(Base):
    """A spec solved but not built: what the user was shown, kept until ``expires_at`` so
    that building it installs exactly that lock, whatever the channel has since."""

    __tablename__ = "previews"
    __table_args__ = (Index("ix_previews_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random: unguessable
    namespace: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    spec_text: Mapped[str] = mapped_column(Text)
    lock_text: Mapped[str] = mapped_column(Text)
    solve: Mapped[str] = mapped_column(String(8))
    base_version: Mapped[int | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class VersionPackage(Base):
    """One package name of a version's lock (its build platform's, conda and pip, named as
    ``service.find.package_key`` normalises them), written when the version is published:
    finding the environments whose current version has a package reads this index, never
    the locks."""

    __tablename__ = "version_packages"
    __table_args__ = (Index("ix_version_packages_name", "name", "version_id"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("version_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    kind: Mapped[str] = mapped_column(String(16))  # spec, lock, log, prefix, pack
    path: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)

    version: Mapped[Version] = relationship(back_populates="artifacts")


class Token(Base):
    """An envyard token. ``owner`` is the person it acts for, whose tokens it may list and
    revoke: ``hub:<user>`` for one a hub user made, ``token:<id>`` for one made with a
    token that owns itself; None: it owns itself (``envyard token create``)."""

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_owner", "owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(300), default=None)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                           default=None)

    roles: Mapped[list[TokenRole]] = relationship(back_populates="token",
                                                  cascade="all, delete-orphan")


class TokenRole(Base):
    __tablename__ = "token_roles"
    __table_args__ = (UniqueConstraint("token_id", "namespace"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    namespace: Mapped[str] = mapped_column(String(64))  # a name, or "*" for every namespace
    role: Mapped[str] = mapped_column(String(16))

    token: Mapped[Token] = relationship(back_populates="roles")


class WebSession(Base):
    """A browser's login with an envyard token (the web UI's form, outside a hub): the
    cookie holds a random secret of its own, never the token, and ends at logout, at
    ``expires_at`` or with its token. ``id`` is the secret's sha256."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_token", "token_id"),
                      Index("ix_web_sessions_expires_at", "expires_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Share(Base):
    """A namespace's admin gave a hub user or a hub group a role there (``members``);
    added to what ``hub.grants`` gives, never taking a role away."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("namespace", "kind", "subject"),
                      Index("ix_shares_subject", "kind", "subject"))

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # "user" or "group"
    subject: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RetentionRule(Base):
    """An override of the global retention settings for a namespace or one environment."""

    __tablename__ = "retention_rules"
    __table_args__ = (UniqueConstraint("namespace", "environment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64), default="")  # "" for the namespace
    keep_last: Mapped[int | None] = mapped_column(default=None)
    keep_days: Mapped[float | None] = mapped_column(default=None)
    failed_log_days: Mapped[float | None] = mapped_column(default=None)


class PinMove(Base):
    """An applied Dask upgrade: the pins move once every version built for them is ready
    (a row, not a thread, so a restart in between loses nothing)."""

    __tablename__ = "pin_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    versions: Mapped[dict[str, Any]]  # the pin set to move to
    source: Mapped[str] = mapped_column(Text, default="")
    version_ids: Mapped[list[Any]]
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                           default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)  # moved, abandoned


class ClusterPins(Base):
    """The Dask cluster's pin sets; the newest row is the one in force."""

    __tablename__ = "cluster_pins"

    id: Mapped[int] = mapped_column(primary_key=True)
    versions: Mapped[dict[str, Any]]
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """Who did what, and when: one row per change, written in the change's transaction
    (``service.audit.record``). Names, not keys: the record outlives what it names."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_namespace", "namespace", "id"),
                      Index("ix_audit_events_environment", "namespace", "environment", "id"),
                      Index("ix_audit_events_namespace_action", "namespace", "action", "id"),
                      Index("ix_audit_events_actor", "actor", "id"),
                      Index("ix_audit_events_action", "action", "id"),
                      Index("ix_audit_events_at", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # as a version's submitted_by names it
    action: Mapped[AuditAction] = mapped_column(Enum(
        AuditAction, native_enum=False, length=32, create_constraint=False,
        validate_strings=True, values_callable=lambda actions: [a.value for a in actions]))
    namespace: Mapped[str | None] = mapped_column(String(64), default=None)  # None: service
    environment: Mapped[str | None] = mapped_column(String(64), default=None)
    version: Mapped[int | None] = mapped_column(default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
