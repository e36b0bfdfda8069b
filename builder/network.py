"""How envyard reaches channels: mirrors in front of them and credentials for private ones.

A lock always names a channel by its canonical URL, so a lock made behind a mirror
installs anywhere and hashes as conda-lock's does; only the request goes elsewhere. A
mirror that fails hands over to the next, and the caller is told (a build writes it in
its log). Credentials are the operator's, never a user's: they are looked up by the host
(and path) a request really goes to, in the form of rattler's authentication file
(``{"host[/path]": {"BasicHTTP": {...}} | {"BearerToken": ...} | {"CondaToken": ...}}``),
and every text that leaves envyard (an error, a log line) is passed through ``redact``.
Hosts are matched without their port, as rattler matches them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from envyard.builder.errors import SpecError

logger = logging.getLogger("envyard")

#: What a redacted secret reads as.
HIDDEN = "***"
_PROBE_TIMEOUT = 10.0
_DOWN_SECONDS = 60.0
_USERINFO_RE = re.compile(r"(?<=://)[^/\s]*@")  # up to the netloc's last '@'
_CONDA_TOKEN_RE = re.compile(r"/t/[^/\s]+(?=/|\s|$)")
Report = Callable[[str], None]


@dataclass(frozen=True)
class Credential:
    """One secret for one host: HTTP basic, a bearer token, or an anaconda.org-style
    conda token (which travels in the path, ``/t/<token>/``)."""

    kind: Literal["basic", "bearer", "conda-token"]
    secret: str
    username: str = ""

    def headers(self) -> dict[str, str]:
        if self.kind == "basic":
            pair = base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        return {}

    def hidden(self) -> tuple[str, ...]:
        """Every form in which this secret could appear in a text."""
        out = [self.secret, urllib.parse.quote(self.secret, safe="")]
        if self.kind == "basic":
            out.append(base64.b64encode(f"{self.username}:{self.secret}".encode()).decode())
        return tuple(s for s in out if len(s) >= 3)


def _credential(key: str, value: object) -> Credential:
    if isinstance(value, dict) and len(value) == 1:
        (kind, body), = value.items()
        if kind == "BearerToken" and isinstance(body, str):
            return Credential("bearer", body)
        if kind == "CondaToken" and isinstance(body, str):
            return Credential("conda-token", body)
        if kind == "BasicHTTP" and isinstance(body, dict) and isinstance(
                body.get("username"), str) and isinstance(body.get("password"), str):
            return Credential("basic", body["password"], body["username"])
    raise SpecError(f"credentials for '{key}': expected one of {{\"BasicHTTP\": "
                    "{\"username\": …, \"password\": …}}, {\"BearerToken\": …}, "
                    "{\"CondaToken\": …}")


@dataclass(frozen=True)
class Credentials:
    """Secrets by ``host[:port][/path]`` (the longest match wins; ``*.example.com``
    covers subdomains; no port: https on 443 only)."""

    entries: tuple[tuple[str, Credential], ...] = ()

    @classmethod
    def parse(cls, data: Mapping[str, object]) -> Credentials:
        """From rattler's authentication-file mapping (keys: host, host/path, *.domain)."""
        return cls(tuple((str(k).strip("/").lower(), _credential(str(k), v))
                         for k, v in data.items()))

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise SpecError(f"cannot read the credentials file: {exc.strerror}") from None
        except ValueError:
            raise SpecError("the credentials file is not JSON") from None
        if not isinstance(data, dict):
            raise SpecError("the credentials file must map hosts to credentials")
        return cls.parse(data)

    @classmethod
    def from_environment(cls) -> Credentials:
        """A laptop's: the file rattler and pixi use (``RATTLER_AUTH_FILE``, else
        ``~/.rattler/credentials.json``), if there is one."""
        path = Path(os.environ.get("RATTLER_AUTH_FILE")
                    or Path.home() / ".rattler" / "credentials.json")
        return cls.load(path) if path.is_file() else cls()

    def __add__(self, other: Credentials) -> Credentials:
        return Credentials(self.entries + other.entries)

    def find(self, url: str) -> Credential | None:
        """The credential for a request to ``url``. A key naming no port covers only
        https on 443 (the form of rattler's file); one naming a port covers that port
        only, so a server on another port of the same host, or plain http, never
        receives it unless the operator named exactly that."""
        split = urlsplit(url)
        try:
            port = split.port or {"https": 443, "http": 80}.get(split.scheme)
        except ValueError:
            return None
        host, path = (split.hostname or "").lower(), split.path
        best, best_len = None, -1
        for key, cred in self.entries:
            key_hostport, _, key_path = key.partition("/")
            key_host, colon, key_port = key_hostport.rpartition(":")
            if not colon or not key_port.isdigit():
                key_host, key_port = key_hostport, ""
            if key_port:
                if port != int(key_port):
                    continue
            elif (split.scheme, port) != ("https", 443):
                continue
            if not (key_host == host or (key_host.startswith("*.") and (
                    host.endswith(key_host[1:]) or host == key_host[2:]))):
                continue
            if key_path and not (path.strip("/") + "/").startswith(key_path + "/"):
                continue
            if len(key) > best_len:
                best, best_len = cred, len(key)
        return best

    def for_url(self, url: str) -> Credential | None:
        return self.find(url)

    def redact(self, text: str) -> str:
        """``text`` without any secret, URL userinfo or conda token in it."""
        for _, cred in self.entries:
            for secret in cred.hidden():
                text = text.replace(secret, HIDDEN)
        return strip_auth(text)


def strip_auth(text: str) -> str:
    """Userinfo (``user:pass@``, conda-lock's ``${USER}:${PASS}@``) and ``/t/<token>``
    taken out of every URL in ``text``, as conda-lock's ``--strip-auth`` does."""
    return _CONDA_TOKEN_RE.sub("", _USERINFO_RE.sub("", text))


_PLACEHOLDER_RE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def written_secret(url: str) -> str | None:
    """What in ``url`` is a secret written out (userinfo other than conda-lock's
    ``${VAR}`` placeholders, a ``/t/<token>/``), or None: such a URL would show its
    secret to every reader of the spec or lock that holds it."""
    userinfo = _USERINFO_RE.search(url)
    if userinfo and _PLACEHOLDER_RE.sub("", userinfo.group(0)).strip(":@"):
        return "a user name or password"
    token = _CONDA_TOKEN_RE.search(url)
    if token and _PLACEHOLDER_RE.sub("", token.group(0)[3:]):
        return "a conda token"
    return None


def _with_token(url: str, cred: Credential | None) -> str:
    """``url`` with a conda token in its path, where the host takes one."""
    if cred is None or cred.kind != "conda-token":
        return url
    split = urlsplit(url)
    return split._replace(path=f"/t/{cred.secret}{split.path}").geturl()


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect to another host, port or scheme does not take the credential along."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        there, here = urlsplit(newurl), urlsplit(req.full_url)
        if new is not None and (there.scheme, there.netloc) != (here.scheme, here.netloc):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostRedirects())


def _base(url: str) -> str:
    return url.rstrip("/") + "/"


@dataclass(frozen=True)
class Network:
    """Mirrors (canonical channel base URL -> mirror base URLs, tried in order) and the
    credentials every request is sent with."""

    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    credentials: Credentials = Credentials()
    timeout: float = _PROBE_TIMEOUT
    #: mirrors that failed lately (-> when): tried last for ``_DOWN_SECONDS``, so 800
    #: downloads do not each wait for the same dead mirror first
    _down: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, mirrors: Mapping[str, Sequence[str]] | None = None,
           credentials: Credentials | None = None) -> Network:
        """Mirrors keyed by channel (a name resolves as rattler resolves it)."""
        from envyard.builder.solve import channel_base_url

        return cls({_base(channel_base_url(c)): tuple(_base(m) for m in ms)
                    for c, ms in (mirrors or {}).items() if ms},
                   credentials or Credentials())

    def redact(self, text: str) -> str:
        return self.credentials.redact(text)

    def candidates(self, url: str) -> list[tuple[str, str | None]]:
        """Where ``url`` may be fetched from, in order: each mirror's URL and the mirror
        (label), or the URL itself (label None) when no mirror covers it."""
        for base, mirrors in self.mirrors.items():
            if url.startswith(base):
                now = time.monotonic()
                ordered = sorted(mirrors, key=lambda m: now - self._down.get(m, -1e9)
                                 < _DOWN_SECONDS)
                return [(m + url[len(base):], m) for m in ordered]
        return [(url, None)]

    def request(self, url: str) -> urllib.request.Request:
        """A request for ``url`` carrying its host's credential (header or token)."""
        cred = self.credentials.for_url(url)
        return urllib.request.Request(_with_token(url, cred),
                                      headers=cred.headers() if cred else {})

    def open(self, url: str, timeout: float, report: Report | None = None) -> Any:
        """An open response for ``url`` from its first mirror that answers (each failure
        reported), else ``OSError`` with the last failure, redacted."""
        last: OSError | None = None
        tried = self.candidates(url)
        for i, (where, mirror) in enumerate(tried):
            try:
                response = _OPENER.open(self.request(where), timeout=timeout)
                if mirror is not None:
                    self._down.pop(mirror, None)
                return response
            except OSError as exc:
                last = exc
                if mirror is not None and report is not None and mirror not in self._down:
                    following = " (no mirror left)" if i == len(tried) - 1 else \
                        f"; trying {tried[i + 1][1]}"
                    report(self.redact(f"mirror {mirror} failed: {_reason(exc)}{following}"))
                if mirror is not None:
                    self._down[mirror] = time.monotonic()
        assert last is not None
        raise OSError(self.redact(_reason(last))) from None

    def pip_index_url(self, index: str) -> str:
        """The index URL pip is given: with its basic credential as userinfo (the only
        form pip takes); a bearer token or conda token cannot reach pip."""
        cred = self.credentials.for_url(index)
        if cred is None:
            return index
        if cred.kind != "basic":
            raise SpecError("the pip index has a bearer or conda token credential; pip "
                            "reads only basic auth (a username and password)")
        split = urlsplit(index)
        user = urllib.parse.quote(cred.username, safe="")
        secret = urllib.parse.quote(cred.secret, safe="")
        return split._replace(netloc=f"{user}:{secret}@{split.netloc}").geturl()

    def _probe(self, base: str, subdir: str) -> str | None:
        """Why ``base`` cannot serve ``subdir``'s index, or None when it can."""
        url = f"{base}{subdir}/repodata.json"
        if url.startswith("file://"):
            return None if Path(urlsplit(url).path).is_file() else "no index there"
        req = self.request(url)
        req.method = "HEAD"
        try:
            with _OPENER.open(req, timeout=self.timeout):
                return None
        except OSError as exc:
            return _reason(exc)

    def _choose(self, base: str, subdir: str, report: Report | None) -> str:
        """The first mirror of ``base`` that serves ``subdir``'s index (failures
        reported); when none does, the first, so the error names it."""
        mirrors = self.mirrors[base]
        for i, mirror in enumerate(mirrors):
            if not mirror.startswith(("http://", "https://", "file://")):
                return mirror  # s3://, oci://: rattler reads them itself
            why = self._probe(mirror, subdir)
            if why is None:
                return mirror
            if report is not None:
                nxt = f"; trying {mirrors[i + 1]}" if i + 1 < len(mirrors) else \
                    " (no mirror left)"
                report(self.redact(f"mirror {mirror} failed: {why}{nxt}"))
        return mirrors[0]

    def routes(self, channels: Sequence[str], subdir: str = "noarch",
               report: Report | None = None) -> dict[str, str]:
        """Each channel's base URL -> the base to read its index from: its first mirror
        that answers (reported), with a conda token where the host takes one. The solver
        reads the route; ``restore`` gives its records their canonical URLs back."""
        from envyard.builder.solve import channel_base_url

        out = {}
        for base in dict.fromkeys(_base(channel_base_url(c)) for c in channels):
            used = base
            if base in self.mirrors:
                used = self._choose(base, subdir, report)
                if report is not None:
                    report(self.redact(f"channel {base.rstrip('/')}: read from mirror "
                                       f"{used.rstrip('/')}"))
            out[base] = _with_token(used, self.credentials.for_url(used))
        return out

    @staticmethod
    def restore(records: Sequence[Any], routes: Mapping[str, str]) -> None:
        """Records read through a route named by their canonical URLs again."""
        moved = [(used, base) for base, used in routes.items() if used != base]
        for record in records if moved else ():
            url = str(record.url)
            for used, base in moved:
                if url.startswith(used):
                    record.url = base + url[len(used):]
                    break

    def client(self, routes: Mapping[str, str]) -> Any:
        """A rattler client for reading ``routes`` (``routes``' values): it sends a
        credential only with a request under a routed base whose URL (scheme, host and
        port) has one, and reads ``s3://`` and ``oci://`` channels. rattler tells the
        header callback the host and path but not the port, so two routed bases that
        only a port or scheme tells apart, one of them credentialed, are refused."""
        from rattler.networking import AddHeadersMiddleware, Client, OciMiddleware, S3Middleware

        bases = []
        for used in dict.fromkeys(routes.values()):
            split = urlsplit(used)
            bases.append(((split.hostname or "").lower(), split.path.rstrip("/") + "/",
                          split.netloc.rpartition("@")[2], split.scheme,
                          self.credentials.find(used)))
        for host, path, netloc, scheme, cred in bases:
            for other in bases:
                if other[0] == host and (other[2], other[3]) != (netloc, scheme) and (
                        cred or other[4]) and (other[1].startswith(path)
                                               or path.startswith(other[1])):
                    raise SpecError(
                        f"channels on {host} at the same path but another port or scheme "
                        "cannot be read together when one has credentials (they could "
                        "not be told apart); solve them separately")
        keyed = sorted(((h, p, c) for h, p, _, _, c in bases if c is not None),
                       key=lambda b: -len(b[1]))

        def headers(host: str, path: str) -> dict[str, str] | None:
            for key_host, key_path, cred in keyed:
                if host.lower() == key_host and (path.rstrip("/") + "/").startswith(key_path):
                    return cred.headers()
            return None

        return Client([AddHeadersMiddleware(headers), OciMiddleware(), S3Middleware()])


def _reason(exc: OSError) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)


__all__ = ["HIDDEN", "Credential", "Credentials", "Network", "strip_auth", "written_secret"]
