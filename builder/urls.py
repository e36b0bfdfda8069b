"""URLs from users, made safe to compare and to open: parsed once, decoded, checked by part.

A lock names every package by URL and a spec names channels by URL, and both come from
users. String prefixes are not containment: ``file:///chan/linux-64/../../etc/passwd`` and
``file:///chan/%2e%2e/evil`` start with ``file:///chan/``. So a URL is split into scheme,
host, port and path segments, each segment percent-decoded *once*, and refused if any
segment is a dot segment, is empty inside the path, or decodes to a separator, a NUL or
another ``%`` (double encoding), or holds anything but letters, digits and ``._~+!=,-``.
Containment is then a comparison of parts, and a local path is rebuilt from the checked
segments, never from the raw text.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from envyard.builder.errors import UnsafeURL

SCHEMES = ("file", "http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: What a decoded path segment may hold: what channel paths and package file names use.
#: Not ';' (Tomcat-based mirrors read `..;` as `..`), not '%' (double encoding), not
#: separators, controls or anything outside ASCII (look-alike dots).
_SEGMENT = re.compile(r"^[A-Za-z0-9._~+!=,-]+$")


@dataclass(frozen=True)
class URLParts:
    """A checked URL: lower-case scheme and host, explicit port, decoded path segments."""

    scheme: str
    host: str
    port: int | None
    segments: tuple[str, ...]

    @property
    def path(self) -> Path:
        """The local file a ``file:`` URL names, built from the checked segments."""
        return Path("/" + "/".join(self.segments))

    def contains(self, other: URLParts) -> bool:
        """True when ``other`` is this URL or lies below it, compared part by part."""
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port) \
            and other.segments[:len(self.segments)] == self.segments

    def __str__(self) -> str:
        """The canonical text: what is compared and what is opened, never the raw input."""
        path = "/" + "/".join(quote(s, safe="@:+!=,;~") for s in self.segments)
        if self.scheme == "file":
            return f"file://{path}"
        port = "" if self.port in (None, _DEFAULT_PORTS.get(self.scheme)) else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        return f"{self.scheme}://{host}{port}{path}"


def parse_url(url: str, *, what: str = "URL") -> URLParts:
    """Split and check ``url`` (a bare absolute path counts as ``file:``), or raise
    ``UnsafeURL`` saying which part is wrong. Credentials, query and fragment are not part
    of a URL's identity and are dropped."""
    if any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in url):
        raise UnsafeURL(f"{what} contains a control character or a backslash")
    if url.startswith("/"):
        url = "file://" + url
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError as exc:
        raise UnsafeURL(f"{what} is not a valid URL ({exc})") from None
    scheme = split.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeURL(f"{what} has scheme '{scheme or 'none'}'; only "
                        f"{', '.join(SCHEMES)} are allowed")
    host = (split.hostname or "").lower()
    if scheme == "file" and host not in ("", "localhost"):
        raise UnsafeURL(f"{what} names a file on another host")
    if scheme != "file" and not host:
        raise UnsafeURL(f"{what} has no host")
    raw = split.path.split("/")
    if raw[0] != "":
        raise UnsafeURL(f"{what} has a relative path")
    raw = raw[1:]
    if raw and raw[-1] == "":
        raw = raw[:-1]  # a trailing slash names the same directory
    segments = []
    for segment in raw:
        try:
            decoded = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise UnsafeURL(f"{what} has a path that is not UTF-8") from None
        if decoded in ("", ".", ".."):
            raise UnsafeURL(f"{what} has an empty or dot segment in its path")
        if not _SEGMENT.match(decoded):
            raise UnsafeURL(f"{what} has a character in its path that channels do not use "
                            "(only letters, digits and ._~+!=,-)")
        segments.append(decoded)
    return URLParts(scheme, "" if scheme == "file" else host,
                    None if scheme == "file" else (port or _DEFAULT_PORTS[scheme]),
                    tuple(segments))


def canonical_pattern(pattern: str) -> str:
    """An allow-list pattern in the form ``URLParts.__str__`` gives channels (scheme and
    host lower-case, default port dropped, path segments decoded and quoted the same
    way, bare paths as file URLs), its wildcards kept; a name pattern is left as it is."""
    pattern = pattern.strip().rstrip("/")
    if pattern.startswith("/"):
        pattern = "file://" + pattern
    scheme, sep, rest = pattern.partition("://")
    if not sep:
        return pattern
    scheme = scheme.lower()
    netloc, slash, path = rest.partition("/")
    host, _, port = netloc.rpartition(":") if netloc.rsplit("]", 1)[-1].count(":") else \
        (netloc, "", "")
    if port and port == str(_DEFAULT_PORTS.get(scheme)):
        netloc = host
    segments = "/".join(quote(unquote(seg), safe="@:+!=,;~*?[]") for seg in path.split("/"))
    return f"{scheme}://{netloc.lower()}{slash}{segments}"


def matches(channel: str, pattern: str) -> bool:
    """Whether a canonical ``channel`` matches a canonical ``pattern``: fnmatch, but for
    URLs the host and the path apart (a `*` in the host must not swallow a '/'; an IPv6
    host's brackets are literal); a pattern naming no path admits every path."""
    if "://" not in pattern or "://" not in channel:
        return fnmatch.fnmatchcase(channel, pattern)
    scheme, _, rest = channel.partition("://")
    pattern_scheme, _, pattern_rest = pattern.partition("://")
    host, _, path = rest.partition("/")
    pattern_host, slash, pattern_path = pattern_rest.partition("/")
    literal = pattern_host.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return (scheme == pattern_scheme and fnmatch.fnmatchcase(host, literal)
            and fnmatch.fnmatchcase(path, pattern_path if slash else "*"))


def is_url(text: str) -> bool:
    """Whether ``text`` is written as a URL or an absolute path (not a channel name)."""
    return "://" in text or text.startswith("/")


def contained(url: str, bases: list[URLParts], *, what: str = "URL") -> URLParts:
    """``url`` checked and found under one of ``bases``; else ``UnsafeURL``."""
    parts = parse_url(url, what=what)
    if not bases:
        raise UnsafeURL(f"{what} cannot be fetched: no channel is configured to build from")
    if not any(base.contains(parts) and len(parts.segments) > len(base.segments)
               for base in bases):
        raise UnsafeURL(f"{what} is not under a channel this service builds from")
    return parts


__all__ = ["URLParts", "canonical_pattern", "contained", "is_url", "matches", "parse_url"]
