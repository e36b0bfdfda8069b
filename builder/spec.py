"""EnvSpec: an environment.yml parsed, validated and normalised, or a ``SpecError`` that says where.

Accepted keys: ``name``, ``channels`` (``nodefaults`` honoured), ``dependencies`` (conda match
specs and one ``pip:`` list), ``platforms``, ``variables``, and conda-lock's extensions
``category``, ``pip-repositories`` and ``allow-pypi-requests``; ``prefix`` is ignored. Platform
selectors (``- pywin32  # [win]``) work as in conda-lock. The system a spec targets (the
virtual packages its lock assumes) is ``system-requirements: {cuda: "12.4", glibc: "2.28",
macos: "13.0"}`` (pixi's words) or conda's ``CONDA_OVERRIDE_CUDA``/``_GLIBC``/``_OSX`` under
``variables:`` (empty: the package is absent); saying both differently is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envyard.builder.errors import SpecError, UnsafeURL
from envyard.builder.network import strip_auth, written_secret
from envyard.builder.urls import canonical_pattern, is_url, matches, parse_url
from envyard.builder.virtual import (
    OVERRIDE_VARIABLES,
    SYSTEM_KEYS,
    SystemRequirements,
    system_version,
)
from envyard.builder.yamlfile import MAX_BYTES, Located, load_yaml

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHANNEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/label/[A-Za-z0-9_.-]+)?$")
KNOWN_PLATFORMS = ("linux-64", "linux-aarch64", "linux-ppc64le", "osx-64", "osx-arm64",
                   "win-64", "win-arm64", "noarch")
_SELECTORS = {
    "linux-64": {"linux64", "unix", "linux"}, "linux-aarch64": {"aarch64", "unix", "linux"},
    "linux-ppc64le": {"ppc64le", "unix", "linux"}, "osx-64": {"osx64", "osx", "unix"},
    "osx-arm64": {"arm64", "osx", "unix"}, "win-64": {"win", "win64"},
}
_SELECTOR_RE = re.compile(r"#\s*\[([^\[\]]+)\]\s*$")
VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables a spec may not set: they reach every reader's kernel (``builder.kernels``), so
# one developer could send a viewer's hub token elsewhere (ENVYARD_SERVER, JUPYTERHUB_*,
# DASK_GATEWAY__*, proxies, AWS_/HF_ endpoints), load code (PYTHONPATH, LD_PRELOAD,
# R_PROFILE_USER, BASH_ENV, SHELLOPTS+PS4, JAVA_TOOL_OPTIONS), install from elsewhere
# (PIP_*, CONDA_*, CONDARC) or trust another CA. CONDA_OVERRIDE_* (virtual packages) pass.
RESERVED_VARIABLE_RE = re.compile(
    r"PATH|HOME|SHELL|ENV|BASH_ENV|SHELLOPTS|BASHOPTS|PS4|ZDOTDIR|CLASSPATH|GCONV_PATH|"
    r"LOCPATH|HOSTALIASES|TAR|BROWSER|PAGER|EDITOR|VISUAL|NODE_OPTIONS|NODE_PATH|"
    r"NODE_TLS_REJECT_UNAUTHORIZED|CONDARC|MAMBARC|"
    r"CONDA_(?!OVERRIDE_)\w*|(ENVYARD|JUPYTER|JPY_|LD_|DYLD_|IPYTHON|DASK_GATEWAY|"
    r"SSL_CERT|REQUESTS_CA|CURL_CA|NODE_EXTRA_CA|R_|PERL|RUBY|LUA_|JAVA_|_JAVA_|JDK_JAVA|"
    r"OPENSSL_|PIP_|UV_|MAMBA|GIT_|AWS_|HF_|OPENAI_|XDG_|LESS)\w*|\w*_PROXY|"
    r"PYTHON(?!(DONTWRITEBYTECODE|UNBUFFERED|HASHSEED|IOENCODING|UTF8|NOUSERSITE)$)\w*",
    re.IGNORECASE)
_KEYS = {"name", "channels", "dependencies", "platforms", "variables", "prefix", "category",
         "pip-repositories", "allow-pypi-requests", "system-requirements"}


def canonical_channel(channel: str) -> str:
    """A channel as it is compared and as it is used: a name as written; a URL (or an
    absolute path) as its checked canonical URL, so ``file:///ok/%2e%2e/evil`` is refused
    rather than matched as if it lay under ``file:///ok``. Raises ``UnsafeURL``."""
    channel = channel.strip()
    if is_url(channel):
        return str(parse_url(channel, what=f"channel '{channel}'"))
    return channel.rstrip("/")


@dataclass(frozen=True)
class ChannelPolicy:
    """Which channels a spec may name: ``None`` allows any; otherwise fnmatch patterns,
    matched against the channel's canonical form (``canonical_channel``); ``narrowed``
    (a namespace's own patterns), when set, must match too."""

    allowed: tuple[str, ...] | None = None
    narrowed: tuple[str, ...] | None = None

    @classmethod
    def of(cls, patterns: Sequence[str] | None,
           narrowed: Sequence[str] | None = None) -> ChannelPolicy:
        return cls(None if patterns is None else tuple(canonical_pattern(p) for p in patterns),
                   None if narrowed is None else tuple(canonical_pattern(p) for p in narrowed))

    def check(self, channel: str) -> bool:
        """Whether ``channel`` may be used; a channel that is not a safe URL never may."""
        if self.allowed is None and self.narrowed is None:
            return True
        try:
            canonical = canonical_channel(channel)
        except UnsafeURL:
            return False
        return all(any(matches(canonical, pat) for pat in patterns)
                   for patterns in (self.allowed, self.narrowed) if patterns is not None)

    def shown(self) -> str:
        """The patterns in force, for an error message."""
        if self.narrowed is None:
            return ", ".join(self.allowed or ("any",))
        return (f"{', '.join(self.allowed or ('any',))}; narrowed by the namespace to "
                f"{', '.join(self.narrowed) or 'none'}")


@dataclass(frozen=True)
class Dependency:
    """One requirement as written, where it was written, and the platforms it applies to;
    ``solver_spec`` is the conda match spec as the solver reads it (conda's meaning of what was
    written: ``python=3.12=*_cpython`` is ``python ==3.12 *_cpython``), when that differs
    from what it reads in ``spec``."""

    spec: str
    line: int
    selector: str | None = None
    solver_spec: str | None = None

    def applies_to(self, platform: str) -> bool:
        return self.selector is None or self.selector in _SELECTORS.get(platform, set())


@dataclass(frozen=True)
class EnvSpec:
    """A validated environment.yml."""

    source: str
    name: str | None
    channels: tuple[str, ...]
    conda: tuple[Dependency, ...]
    pip: tuple[Dependency, ...] = ()
    platforms: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    category: str = "main"
    pip_repositories: tuple[str, ...] = ()
    nodefaults: bool = False
    #: the system it targets, as it says it (``system-requirements`` or ``CONDA_OVERRIDE_*``)
    system: SystemRequirements = field(default_factory=SystemRequirements)

    def conda_specs(self, platform: str) -> list[str]:
        """The conda match specs for ``platform`` (plus ``pip`` when there is a pip section)."""
        specs = [d.solver_spec or d.spec for d in self.conda if d.applies_to(platform)]
        if self.pip_specs(platform) and not any(_name(s) == "pip" for s in specs):
            specs.append("pip")
        return specs

    def pip_specs(self, platform: str) -> list[str]:
        return [d.spec for d in self.pip if d.applies_to(platform)]


def _name(spec: str) -> str:
    return re.split(r"[\s=<>!~\[]", spec.split("::")[-1], maxsplit=1)[0]


def _fail(msg: str, source: str, at: Located | int | None) -> SpecError:
    line = at.line if isinstance(at, Located) else at
    return SpecError(msg, source=source, line=line)


def _strings(item: Located, what: str, source: str) -> list[Located]:
    if not isinstance(item.value, list):
        raise _fail(f"'{what}' must be a list", source, item)
    for v in item.value:
        if not isinstance(v.value, str):
            raise _fail(f"each entry of '{what}' must be a string, not {v.value!r}", source, v)
    return item.value


def _selector(lines: list[str], line: int) -> str | None:
    if 0 < line <= len(lines):
        m = _SELECTOR_RE.search(lines[line - 1])
        if m:
            return m.group(1).strip()
    return None


def _conda_dep(item: Located, source: str, lines: list[str]) -> Dependency:
    import rattler

    text = " ".join(item.value.split())
    if not text:
        raise _fail("empty dependency", source, item)
    if "::" not in text and re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://|/)", text):
        raise _fail(f"'{text}': a package URL cannot be locked from a spec (it would be "
                    "fetched from anywhere); name the package and list its channel under "
                    "'channels:'", source, item)
    try:
        conda = rattler.MatchSpec(text)  # conda's reading: lenient
    except Exception as exc:
        raise _fail(f"'{text}' is not a valid conda match spec: {exc}", source, item) from exc
    if re.search(r'[\[,]url="', str(conda)):  # `name[url=...]`: the solver would fetch it
        raise _fail(f"'{text}': a package URL cannot be locked from a spec (it would be "
                    "fetched from anywhere); name the package and list its channel under "
                    "'channels:'", source, item)
    try:
        solver = str(rattler.MatchSpec(text, strict=True))
    except Exception:
        solver = None  # a form only conda reads (``name=ver=build``, ``name>=ver=build``)
    solver_spec = None
    if solver != str(conda):
        # the solver would read it otherwise (``python=3.12 *_cpython``) or not at all:
        # give it conda's reading, written as it reads it
        solver_spec = str(conda)
        try:
            rattler.MatchSpec(solver_spec, strict=True)
        except Exception as exc:
            raise _fail(f"'{text}' is not a valid conda match spec: {exc}", source,
                        item) from exc
    if _name(text) == "":
        raise _fail(f"'{text}' names no package", source, item)
    return Dependency(text, item.line, _selector(lines, item.line), solver_spec)


def _pip_dep(item: Located, source: str, lines: list[str]) -> Dependency:
    from packaging.requirements import InvalidRequirement, Requirement  # slow: only for pip

    text = item.value.strip()
    if re.match(r"^(\S+\s*@\s*)?(git|hg|svn|bzr)\+", text):
        raise _fail(f"'{text}': a version-control requirement cannot be locked: envyard "
                    "installs only wheels whose sha256 it records; build a wheel and serve "
                    "it from an index under 'pip-repositories'", source, item)
    if re.search(r"\s--hash[=\s]", text):
        raise _fail(f"'{text}': --hash pins are pip's own lock; envyard records each "
                    "wheel's sha256 in the lock it makes: write the requirement without "
                    "--hash", source, item)
    if text.startswith(("-e ", "--editable", "-r ", "--")):
        raise _fail(f"pip option '{text}' cannot be locked; list plain requirements", source,
                    item)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise _fail(f"'{text}' is not a valid pip requirement: {exc}", source, item) from exc
    if req.url:
        raise _fail(f"'{text}': direct URL requirements cannot be locked", source, item)
    return Dependency(text, item.line, _selector(lines, item.line))


def _channels(item: Located, source: str, policy: ChannelPolicy) -> tuple[list[str], bool]:
    out, nodefaults = [], False
    for c in _strings(item, "channels", source):
        name = c.value.strip().rstrip("/")
        if name == "nodefaults":
            nodefaults = True
            continue
        directory = name.startswith("/")  # a local channel directory, as `-c DIR` takes it
        if not (directory or _CHANNEL_NAME_RE.fullmatch(name) or name.startswith(
                ("https://", "http://", "file://"))):
            raise _fail(f"'{name}' is not a channel name, URL or absolute directory", source,
                        c)
        secret = written_secret(name)
        if secret:
            raise _fail(f"channel '{strip_auth(name)}' has {secret} in its URL, which every "
                        "reader of the spec would see; the service has its own credentials "
                        "(or write conda-lock's ${VAR} placeholders)", source, c)
        try:
            canonical = canonical_channel(Path(name).as_uri() if directory else name)
        except UnsafeURL as exc:
            raise _fail(str(exc), source, c) from None
        if not policy.check(canonical):
            raise _fail(f"channel '{name}' is not allowed here (allowed: {policy.shown()})",
                        source, c)
        name = name if directory else canonical  # as written: conda-lock hashes it so
        if name in out:
            raise _fail(f"channel '{name}' is listed twice", source, c)
        out.append(name)
    return out, nodefaults


def _system_value(key: str, item: Located, what: str, source: str) -> str:
    """One system requirement's version as written: a string (or a whole number); a
    decimal number is refused, since YAML reads 12.10 as 12.1."""
    value = item.value
    if isinstance(value, bool) or not isinstance(value, str | int | None):
        raise _fail(f"{what} must be a version in quotes, like \"12.4\" (unquoted, YAML "
                    f"reads {value!r} as a {type(value).__name__})", source, item)
    try:
        return system_version(key, "" if value is None else str(value))
    except ValueError as exc:
        raise _fail(f"{what}: {exc}", source, item) from None


def _system(doc: dict[str, Located], source: str) -> SystemRequirements:
    """The system the spec targets: its ``system-requirements`` and conda's override
    variables, which must agree where both are given."""
    given: dict[str, tuple[str, Located, str]] = {}
    variables = doc.get("variables")
    if variables is not None and isinstance(variables.value, dict):
        for name, item in variables.value.items():
            if name in OVERRIDE_VARIABLES:
                key = OVERRIDE_VARIABLES[name]
                given[key] = (_system_value(key, item, f"variable '{name}'", source), item,
                              f"variable {name}")
    if "system-requirements" not in doc:
        return SystemRequirements.of({k: v for k, (v, _, _) in given.items()})
    reqs = doc["system-requirements"]
    if not isinstance(reqs.value, dict):
        raise _fail("'system-requirements' must be a mapping like {cuda: \"12.4\"}", source,
                    reqs)
    values = {k: v for k, (v, _, _) in given.items()}
    for key, item in reqs.value.items():
        if key not in SYSTEM_KEYS:
            raise _fail(f"unknown system requirement '{key}' (known: "
                        f"{', '.join(SYSTEM_KEYS)})", source, item)
        value = _system_value(key, item, f"system-requirements {key}", source)
        if key in given and given[key][0] != value:
            said, at, where = given[key]
            raise _fail(f"system-requirements {key} '{value}' disagrees with {where} "
                        f"'{said}' on line {at.line}: say it once", source, item)
        values[key] = value
    return SystemRequirements.of(values)


def parse_spec(text: str | bytes, *, source: str = "environment.yml",
               policy: ChannelPolicy | None = None, max_bytes: int = MAX_BYTES) -> EnvSpec:
    """Parse and validate environment.yml content."""
    policy = policy or ChannelPolicy()
    root = load_yaml(text, source=source, max_bytes=max_bytes)
    if not isinstance(root.value, dict):
        raise _fail("the top level must be a mapping with a 'dependencies' list", source, root)
    doc: dict[str, Located] = root.value
    lines = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).splitlines()
    for key, val in doc.items():
        if key not in _KEYS:
            raise _fail(f"unknown key '{key}' (expected one of: {', '.join(sorted(_KEYS))})",
                        source, val.line - (0 if isinstance(val.value, str | None) else 1))
    name = None
    if "name" in doc and doc["name"].value is not None:
        name = str(doc["name"].value)
        if not NAME_RE.fullmatch(name):
            raise _fail(f"name '{name}' must match {NAME_RE.pattern}", source, doc["name"])
    channels, nodefaults = _channels(doc["channels"], source, policy) if "channels" in doc \
        else ([], False)
    if "dependencies" not in doc:
        raise _fail("no 'dependencies' list", source, root)
    deps = doc["dependencies"]
    if not isinstance(deps.value, list) or not deps.value:
        raise _fail("'dependencies' must be a non-empty list", source, deps)
    conda: list[Dependency] = []
    pip: list[Dependency] = []
    for item in deps.value:
        if isinstance(item.value, str):
            conda.append(_conda_dep(item, source, lines))
        elif isinstance(item.value, dict) and set(item.value) == {"pip"}:
            if pip:
                raise _fail("only one 'pip:' section is allowed", source, item)
            pip = [_pip_dep(p, source, lines) for p in _strings(item.value["pip"], "pip", source)]
        else:
            raise _fail("a dependency must be a match spec string or a 'pip:' list", source, item)
    seen: dict[str, int] = {}
    for d in conda:
        n = _name(d.spec)
        if n in seen and d.selector is None:
            raise _fail(f"'{n}' is listed twice (also on line {seen[n]})", source, d.line)
        seen[n] = d.line
    platforms: list[str] = []
    if "platforms" in doc:
        for p in _strings(doc["platforms"], "platforms", source):
            if p.value not in KNOWN_PLATFORMS:
                raise _fail(f"unknown platform '{p.value}' (known: {', '.join(KNOWN_PLATFORMS)})",
                            source, p)
            platforms.append(p.value)
    variables: dict[str, str] = {}
    if "variables" in doc:
        vs = doc["variables"]
        if not isinstance(vs.value, dict):
            raise _fail("'variables' must be a mapping of names to values", source, vs)
        for k, v in vs.value.items():
            if not isinstance(k, str) or not VARIABLE_RE.fullmatch(k):
                raise _fail(f"variable name {k!r} is not a valid environment variable", source, v)
            if RESERVED_VARIABLE_RE.fullmatch(k):
                raise _fail(f"variable '{k}' is reserved: it would reach every reader's kernel "
                            "and the hub's secrets (PATH, PYTHON*, LD_*, JUPYTER*, ENVYARD*, "
                            "DASK_GATEWAY*, proxies and CA files are set by the service)",
                            source, v)
            if isinstance(v.value, list | dict):
                raise _fail(f"variable '{k}' must be a plain value", source, v)
            variables[k] = "" if v.value is None else str(v.value)
    repos = [r.value for r in _strings(doc["pip-repositories"], "pip-repositories", source)] \
        if "pip-repositories" in doc else []
    category = doc["category"].value if "category" in doc else None
    if category not in (None, "") and not (isinstance(category, str)
                                           and NAME_RE.fullmatch(category)):
        raise _fail(f"'category' must be a name like 'main' or 'dev', not {category!r}",
                    source, doc["category"])
    category = category or "main"  # as conda-lock: an empty category is main
    return EnvSpec(source=source, name=name, channels=tuple(channels), conda=tuple(conda),
                   pip=tuple(pip), platforms=tuple(platforms), variables=variables,
                   category=category, pip_repositories=tuple(repos), nodefaults=nodefaults,
                   system=_system(doc, source))


def read_spec(path: Path, *, policy: ChannelPolicy | None = None,
              max_bytes: int = MAX_BYTES) -> EnvSpec:
    """Read and parse an environment file, refusing huge files before reading them."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SpecError(f"file is {size} bytes; the limit is {max_bytes}", source=str(path))
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("no such file", source=str(path)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not an environment file", source=str(path)) from None
    except PermissionError:
        raise SpecError("permission denied", source=str(path)) from None
    return parse_spec(data, source=str(path), policy=policy, max_bytes=max_bytes)
