"""The service's one configuration: ``ENVYARD_*`` environment variables over a YAML file.

The YAML file is named by ``ENVYARD_CONFIG``; environment variables win over it, and both
over the defaults, which are the embedded set-up: SQLite and a local directory on this
machine, builds run in-process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    YamlConfigSettingsSource,
)

from envyard.builder.errors import ConfigError, SpecError
from envyard.builder.fetch import Sources
from envyard.builder.layout import envyard_home
from envyard.builder.network import Credentials, Network, strip_auth, written_secret
from envyard.builder.spec import ChannelPolicy

DEFAULT_ROOT = envyard_home() / "volume"


def _list(value: Any) -> Any:
    """A list setting from the environment: JSON (``["a", "b"]``) or plain ``a,b``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            try:
                return json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not a JSON list ({exc})") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _version_limits(value: dict[str, str]) -> dict[str, str]:
    """``virtual_packages_allowed``: virtual package names and version specs rattler reads."""
    import rattler

    for name, spec in value.items():
        if not name.startswith("__"):
            raise ValueError(f"{name} is not a virtual package (they start with __)")
        try:
            rattler.VersionSpec(spec)
        except Exception:
            raise ValueError(f"{name}: '{spec}' is not a version spec like <=12.8") from None
    return value


#: A list of strings that ``ENVYARD_X=a,b`` sets as well as ``ENVYARD_X='["a","b"]'``.
StrList = Annotated[list[str], NoDecode, BeforeValidator(_list)]


class JobProfile(BaseModel):
    """Where and how big a namespace's build Jobs are (Kubernetes field names)."""

    model_config = ConfigDict(extra="forbid")
    resources: dict[str, dict[str, str]] = Field(
        {}, description="requests/limits, e.g. {requests: {cpu: '2', memory: 8Gi}}.")
    node_selector: dict[str, str] = Field(
        {}, description="Node labels the pod must match.",
        validation_alias=AliasChoices("node_selector", "nodeSelector"))
    tolerations: list[dict[str, Any]] = Field([], description="Taints the pod tolerates.")


class KubernetesSettings(BaseModel):
    """The Kubernetes runner: each build is a Job running ``envyard worker`` in the service
    image, with the shared volume mounted at ``root``."""

    model_config = ConfigDict(extra="forbid")
    api_url: str | None = Field(None, description="API server URL; unset: in-cluster config.")
    namespace: str = Field("default", description="Kubernetes namespace of build Jobs.")
    image: str = Field("", description="Image of build pods (the service's own image).")
    volume_claim: str = Field("", description="PersistentVolumeClaim of the shared volume.")
    config_map: str | None = Field(None, description="ConfigMap with the settings file; "
                                   "mounted at /etc/envyard as in the service.")
    config_file: str = Field("envyard.yml", description="Its key: ENVYARD_CONFIG of builds.")
    env: list[dict[str, Any]] = Field(
        [], description="Extra env entries of build pods (secretKeyRef for the database URL "
        "and storage keys).")
    secret_mounts: dict[str, str] = Field(
        {}, description="Secrets mounted into build pods: name -> directory (e.g. a GCS key).")
    service_account: str | None = Field(None, description="Service account of build pods.")
    max_jobs: int = Field(20, ge=1, description="Build Jobs envyard keeps running at once.")
    retries: int = Field(2, ge=0, le=10, description="Pod retries after an infrastructure "
                         "failure (evicted, lost, out of memory); build errors never retry.")
    deadline_margin: int = Field(600, ge=0, description="Seconds added to the stage limits "
                                 "for a Job's activeDeadlineSeconds.")
    ttl_seconds: int = Field(3600, ge=0, description="Finished Jobs are kept this long.")
    poll_seconds: float = Field(2.0, gt=0, description="Seconds between looks at the Jobs.")
    profiles: dict[str, JobProfile] = Field(
        {}, description="Per namespace ('*': every other one): resources, node selector, "
        "tolerations.")
    gpu_profile: JobProfile | None = Field(
        None, description="The profile of builds of environments that target CUDA (their "
        "spec or namespace names a CUDA version), e.g. {node_selector: {pool: gpu}}; "
        "unset: their namespace's profile.")


class ImageSettings(BaseModel):
    """Images of versions: where they are pushed, what they are built on."""

    model_config = ConfigDict(extra="forbid")
    registry: str | None = Field(
        None, description="Registry images are pushed to (host:port or https://host); "
        "unset, no images are built.")
    repository_prefix: str = Field(
        "", description="Prefix of image repositories: <prefix><ns>-<name>:v<N>.")
    base: str = Field("", description="Base image reference, e.g. "
                            "registry.example.org/debian:bookworm-slim.")
    registry_username: str | None = Field(None, description="Registry user name.")
    registry_password: str | None = Field(None, description="Registry password.")
    registry_insecure: bool = Field(
        False, description="Allow plain HTTP to a registry that is not on loopback.")
    registry_ca_bundle: str | None = Field(
        None, description="CA bundle (PEM) for a registry with a private certificate.")
    layers: int = Field(64, ge=1, le=120, description="Most layers an environment "
                              "gets (packages are grouped into them).")
    root: str = Field("/opt/envyard/envs", description="Where environments live in "
                            "images: <root>/<ns>/<name>.")
    docker_host: str | None = Field(
        None, description="A Docker-compatible engine (DOCKER_HOST form) that also receives "
        "each image, e.g. unix:///run/podman/podman.sock.")


class HubSettings(BaseModel):
    """JupyterHub: its API, envyard's identity in it, and who gets which role."""

    model_config = ConfigDict(extra="forbid")
    api_url: str | None = Field(
        None, description="JupyterHub API URL (…/hub/api); set, envyard accepts hub tokens "
        "and hub OAuth logins (`envyard serve --hub` sets it).")
    public_url: str | None = Field(
        None, description="The hub's URL as browsers see it (OAuth redirects); default: "
        "api_url without /hub/api.")
    service_name: str = Field("envyard", description="envyard's service name in the hub.")
    service_token: str | None = Field(
        None, description="envyard's API token as a hub service (its OAuth client secret).")
    grants: dict[str, Literal["viewer", "developer", "admin"]] = Field(
        {"{user}": "developer", "shared": "viewer"},
        description="Roles a hub user gets, by namespace; '{user}' is the user's own name, "
        "'{group}' each of the user's hub groups (`{group}: developer`: a team's members "
        "develop in the namespace named after it). A later rule reaching the same namespace "
        "wins.")
    group_grants: dict[str, dict[str, Literal["viewer", "developer", "admin"]]] = Field(
        {}, description="Roles the members of a hub group get, by namespace ('*': every "
        "namespace), e.g. `{admins: {'*': admin}}`; they raise what `grants` give, never "
        "lower it.")
    identity_seconds: float = Field(
        60.0, ge=0, description="How long the hub's answer about a token (the user, admin "
        "flag and groups) is reused; a change of groups takes effect within this.")
    groups: dict[str, list[str]] = Field(
        {}, description="The embedded hub's groups and their members, loaded at its start "
        "(hubs of your own manage groups themselves).")
    admin_users: list[str] = Field(
        [], description="The embedded hub's admin users (they may change groups through "
        "the hub's API).")
    admins: Literal["viewer", "developer", "admin"] | None = Field(
        "admin", description="Role hub admins get on every namespace; null: none.")
    port: int = Field(8000, description="Public port of the hub `serve --hub` starts.")
    proxy_command: str = Field(
        "configurable-http-proxy", description="configurable-http-proxy executable (npm).")
    password: str | None = Field(
        None, description="Shared password of the embedded hub's dummy login; null: any.")

    @property
    def browser_url(self) -> str | None:
        """The hub's URL as browsers see it (``public_url``, else ``api_url`` without
        ``/hub/api``), without a trailing slash; None without a hub."""
        if not self.api_url and not self.public_url:
            return None
        api = (self.api_url or "").rstrip("/")
        return (self.public_url or api.removesuffix("/hub/api")).rstrip("/")


class StorageSettings(BaseModel):
    """Where packs, locks, specs and logs are kept."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["local", "gcs", "s3"] = Field(
        "local", description="Where packs, locks, specs and logs are kept: the volume, Google "
        "Cloud Storage or S3.")
    bucket: str = Field("", description="Bucket of the gcs or s3 store.")
    prefix: str = Field("", description="Prefix of every object name in the bucket.")
    endpoint: str | None = Field(
        None, description="API endpoint of an S3-compatible store or a GCS emulator.")
    region: str | None = Field(None, description="S3 region.")
    project: str | None = Field(None, description="GCS project.")
    credentials: Path | None = Field(
        None, description="GCS service-account key file; it also signs download URLs.")
    access_key_id: str | None = Field(None, description="S3 access key id; unset: "
                                              "boto3's own lookup (env, instance role).")
    secret_access_key: str | None = Field(None, description="S3 secret key.")
    url_seconds: int = Field(900, ge=1, le=604800, description="Lifetime of signed "
                                     "download URLs.")


class Settings(BaseSettings):
    """Typed settings, read once at start-up."""

    model_config = SettingsConfigDict(env_prefix="ENVYARD_", extra="forbid",
                                      env_nested_delimiter="__")

    root: Path = Field(DEFAULT_ROOT, description="The shared volume: prefixes, packs, logs.")
    database_url: str = Field("", description="SQLAlchemy URL; empty: SQLite under root.")
    default_channels: StrList = Field(
        ["conda-forge"], description="Channels a spec that names none is solved against "
        "(a spec's own channels are what it is solved against).")
    allowed_channels: StrList | None = Field(
        None, description="fnmatch patterns (on canonical channels: names as written, URLs "
        "decoded) a spec's or a pushed lock's channels must match; unset: the "
        "default_channels only. A namespace may narrow it (PUT …/namespaces/NS/channels).")
    mirrors: dict[str, StrList] = Field(
        {}, description="Channel (name or URL) -> mirror base URLs (http(s)://, file://, "
        "s3://, oci://), tried in order; locks keep the channel's own URLs.")
    credentials_file: Path | None = Field(
        None, description="Credentials for private channels, mirrors and the pip index, in "
        "rattler's authentication-file JSON (no port in a key: https on 443 only): "
        "{\"host[:port][/path]\": {\"BasicHTTP\": "
        "{\"username\": …, \"password\": …}} | {\"BearerToken\": …} | "
        "{\"CondaToken\": …}}.")
    credentials: SecretStr | None = Field(
        None, description="The same JSON as credentials_file, given as a value (e.g. "
        "ENVYARD_CREDENTIALS from a Kubernetes Secret); both are read, this one wins.")
    platform: str = Field("", description="The platform builds are for; empty: this host's.")
    pip_index: str | None = Field(None, description="Package index for pip: sections.")
    build_concurrency: int = Field(2, ge=1, le=64, description="Builds run at once.")
    kernel_display_name: str = Field(
        "{namespace}/{name} (v{version})", pattern=r"^([^{}]|\{(namespace|name|version)\})*$",
        description="What a kernel is called in the launcher: '{namespace}', '{name}' and "
        "'{version}' are replaced (drop '{version}' to keep one name across versions).")
    solve_timeout: float = Field(300.0, gt=0, description="Seconds a solve may take.")
    preview_seconds: float = Field(
        3600.0, gt=0, le=7 * 86400, description="How long a preview can still be built "
        "(its lock is kept that long; building it afterwards answers 410).")
    install_timeout: float = Field(1800.0, gt=0, description="Seconds an install may take.")
    pack_timeout: float = Field(1800.0, gt=0, description="Seconds packing may take.")
    pack: bool = Field(True, description="Write a conda-pack archive for every version.")
    package_index_seconds: float = Field(
        600.0, gt=0, description="Package search: seconds a channel's names and versions are "
        "kept in memory before they are read again.")
    package_index_timeout: float = Field(
        120.0, gt=0, description="Package search: seconds reading a channel's index may take "
        "before the channel counts as unreachable.")
    anonymous: Literal["off", "read"] = Field(
        "off", description="'read' lets requests without a token read every namespace.")
    token_max_days: float = Field(
        90.0, gt=0, le=3650, description="Longest lifetime of a token made through the API "
        "(POST /api/v1/tokens, `envyard token new`): such a token always expires, by default "
        "after this many days.")
    keep_last: int | None = Field(5, ge=0, description="Retention: keep the newest N ready "
                                  "versions of every environment.")
    keep_days: float | None = Field(30.0, ge=0, description="Retention: keep ready versions "
                                    "younger than this many days.")
    failed_log_days: float | None = Field(7.0, ge=0, description="Retention: keep failed "
                                          "builds' logs this many days.")
    gc_interval: float = Field(0.0, ge=0, description="Seconds between scheduled garbage "
                               "collections; 0 turns the schedule off.")
    dask_pins: Path | None = Field(None, description="Pin file seeding the Dask cluster's "
                                   "pin set on first start (e.g. envs/cluster/dask-pins.yml).")
    dask_pins_env: str | None = Field(
        None, description="NAMESPACE/NAME of the environment the cluster image is built from: "
        "its current version's lock is the pin set (wins over the stored pins).")
    max_spec_bytes: int = Field(1 << 20, description="Largest environment file accepted.")
    max_lock_bytes: int = Field(64 << 20, description="Largest lockfile accepted.")
    virtual_packages_allowed: Annotated[dict[str, str], AfterValidator(_version_limits)] = Field(
        {}, description="What this service's builds may assume of a system a spec or "
        "namespace asks for: virtual package -> version spec, e.g. {__cuda: '<=12.8'}; "
        "a version outside it is refused (422). Saying the package is absent always passes.")
    image: ImageSettings = Field(default_factory=lambda: ImageSettings())
    hub: HubSettings = Field(default_factory=lambda: HubSettings())
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    runner: Literal["local", "kubernetes"] = Field(
        "local", description="Where builds run: threads of this process, or Kubernetes Jobs.")
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    host: str = Field("127.0.0.1", description="Address `envyard serve` binds.")
    port: int = Field(8765, description="Port `envyard serve` binds.")
    trusted_proxies: StrList = Field(
        [], description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are "
        "believed (the hub's proxy: 127.0.0.1); empty: none, the peer is the client.")
    request_threads: int = Field(16, ge=1, le=256, description="Threads serving requests; "
                                 "the database pool is sized from them and the builds.")
    max_requests: int = Field(512, ge=1, description="Requests in flight before new ones "
                              "are answered 503 with Retry-After.")
    max_log_followers: int = Field(512, ge=1, description="Log streams (?follow=true) open "
                                   "at once before new ones are answered 503.")
    min_free_bytes: int = Field(64 << 20, ge=0, description="Free space the volume must "
                                "have to accept a submission; less answers 507.")
    metrics: Literal["anonymous", "token", "off"] = Field(
        "token", description="/metrics: open to anyone, for tokens with a role on '*' "
        "(e.g. `--role '*=viewer'` for Prometheus), or not served.")
    shutdown_grace: float = Field(10.0, ge=0, description="Seconds a stopping service "
                                  "(SIGTERM, SIGINT) gives running builds to reach a stage "
                                  "boundary before it hands them back to the queue.")
    log_format: Literal["text", "json"] = Field(
        "text", description="The service's log lines on stderr: 'text' for people, 'json' "
        "(one object a line, with the version it is about) for log collectors.")

    @model_validator(mode="after")
    def _backends_complete(self) -> Settings:
        if self.storage.backend != "local" and not self.storage.bucket:
            raise ValueError(f"storage.backend {self.storage.backend!r} needs storage.bucket")
        if self.runner == "kubernetes" and not (self.kubernetes.image and
                                                self.kubernetes.volume_claim):
            raise ValueError("runner 'kubernetes' needs kubernetes.image and "
                             "kubernetes.volume_claim")
        return self

    @property
    def db_pool_size(self) -> int:
        """Connections one process may need at once: two in each request thread (the
        caller's lookup, the route's session), one more per request being processed (its
        session lives from its route's thread to its teardown's; ``service.admission``
        processes ``request_threads`` at a time), two per build, the background loops."""
        return 3 * self.request_threads + 2 * self.build_concurrency + 8

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / 'envyard.db'}"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[Any] = [init_settings, env_settings]
        config = os.environ.get("ENVYARD_CONFIG")
        if config:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    def channel_policy(self, narrowed: list[str] | None = None) -> ChannelPolicy:
        """The channels a spec or lock may name: ``allowed_channels`` (unset: the default
        channels), narrowed by a namespace's own patterns."""
        allowed = self.default_channels if self.allowed_channels is None \
            else self.allowed_channels
        return ChannelPolicy.of(allowed, narrowed)

    def spec_channels(self, channels: Sequence[str]) -> list[str]:
        """The channels a spec is solved and installed from: its own, else the defaults."""
        return list(channels) or list(self.default_channels)

    @field_validator("mirrors")
    @classmethod
    def _mirrors_without_secrets(cls, mirrors: dict[str, list[str]]) -> dict[str, list[str]]:
        for urls in mirrors.values():
            for url in urls:
                if written_secret(url):
                    raise ValueError(f"mirror '{strip_auth(url)}' has {written_secret(url)} "
                                     "in its URL; give it in credentials_file or credentials "
                                     "(it would otherwise be written into build logs)")
        return mirrors

    @cached_property
    def network(self) -> Network:
        """Mirrors and credentials, read once (a bad credentials file fails at start)."""
        credentials = Credentials()
        if self.credentials_file is not None:
            try:
                credentials = Credentials.load(self.credentials_file)
            except SpecError as exc:
                raise ConfigError(f"credentials_file ({self.credentials_file}): {exc}") from None
        if self.credentials is not None:
            try:
                data = json.loads(self.credentials.get_secret_value())
            except ValueError:
                raise ConfigError("ENVYARD_CREDENTIALS: not JSON") from None
            if not isinstance(data, dict):
                raise ConfigError("ENVYARD_CREDENTIALS: must map hosts to credentials")
            try:
                credentials = Credentials.parse(data) + credentials  # the earlier one wins
            except SpecError as exc:
                raise ConfigError(f"ENVYARD_CREDENTIALS: {exc}") from None
        return Network.of(self.mirrors, credentials)

    def package_sources(self, channels: Sequence[str]) -> Sources:
        """Where builds may fetch packages from: ``channels`` and the pip index (through
        the mirrors, with the credentials), and never a file on the volume (its database,
        its keys, other namespaces' files). No channel means nothing may be fetched."""
        from envyard.builder.solve import channel_base_url

        bases = [channel_base_url(strip_auth(c)) for c in channels]
        if self.pip_index:  # its files live beside /simple (PEP 503), not under it
            bases.append(self.pip_index.rstrip("/").rsplit("/simple", 1)[0])
        return Sources.of(bases, [self.root], self.network)

    def build_platform(self) -> str:
        from envyard.builder.locker import host_platform

        return self.platform or host_platform()


#: The grouped settings' old flat names (``image_registry`` is now ``image.registry``).
RENAMED = {f"{group}_{name}": f"{group}.{name}"
           for group, model in (("image", ImageSettings), ("hub", HubSettings),
                                ("storage", StorageSettings))
           for name in model.model_fields} | {"storage": "storage.backend",
                                              "channels": "default_channels"}


def _new_name(old: str) -> str:
    new = RENAMED[old]
    return f"{new} (ENVYARD_{new.replace('.', '__').upper()})"


def load_settings(**given: Any) -> Settings:
    """The settings from the environment and ``ENVYARD_CONFIG``; a malformed one is a
    ``ConfigError`` naming the variable and the form it expects (not an internal error),
    and one under its old flat name says its new one (never silently ignored)."""
    old = sorted(k for k, v in os.environ.items() if k.startswith("ENVYARD_")
                 and k[8:].lower() in RENAMED and not (k == "ENVYARD_STORAGE"
                                                       and v.lstrip().startswith("{")))
    if old:
        raise ConfigError("renamed settings: " + "; ".join(
            f"{k} is now {_new_name(k[8:].lower())}" for k in old))
    try:
        settings = Settings(**given)
        _ = settings.network  # credentials read now: a bad file is a ConfigError at start
        return settings
    except SettingsError as exc:  # a value the environment source could not decode
        cause = str(exc)
        field = cause.split('"')[1] if '"' in cause else "?"
        kind = Settings.model_fields[field].annotation if field in Settings.model_fields \
            else None
        nested = isinstance(kind, type) and issubclass(kind, BaseModel)
        name = f"one of ENVYARD_{field.upper()}__*" if nested else f"ENVYARD_{field.upper()}"
        raise ConfigError(f"{name}: cannot be read; it expects JSON "
                          f"(see `envyard serve --help`) ({cause})") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            name = (f"ENVYARD_{key.replace('.', '__').upper()} (or {key}: in the "
                    "ENVYARD_CONFIG file)") if key else "the settings"
            secret = any(w in key.lower() for w in ("password", "secret", "token", "key"))
            shown = isinstance(err.get("input"), str | int | float) and not secret and \
                err["type"] != "extra_forbidden"  # a misspelt key's value may be a secret
            if err["type"] == "extra_forbidden" and key in RENAMED:
                problems.append(f"{key} is now {_new_name(key)}")
                continue
            if key == "storage" and isinstance(err.get("input"), str):  # the old storage: s3
                problems.append(f"storage: {err['input']} is now storage: {{backend: "
                                f"{err['input']}}} (ENVYARD_STORAGE__BACKEND)")
                continue
            problems.append(f"{name}: {err['msg']}"
                            + (f" (got {err['input']!r})" if shown else ""))
        raise ConfigError("bad setting: " + "; ".join(problems)) from None
