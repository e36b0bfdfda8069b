"""A lock's URLs cannot read a file outside the channel, whoever calls the builder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from envyard.builder.errors import FetchError, UnsafeURL
from envyard.builder.fetch import Sources, fetch


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, str]:
    """A channel with one package, a secret beside it, and the secret's sha256."""
    channel = tmp_path / "chan"
    (channel / "linux-64").mkdir(parents=True)
    (channel / "linux-64" / "ok-1-0.conda").write_bytes(b"package")
    secret = tmp_path / "secret.conda"
    secret.write_bytes(b"s3cret")
    return channel, secret, hashlib.sha256(b"s3cret").hexdigest()


@pytest.mark.parametrize("tail", [
    "linux-64/../../secret.conda",
    "linux-64/%2e%2e/%2e%2e/secret.conda",
    "linux-64/%2E%2E/%2e%2E/secret.conda",
    "linux-64/..%2f..%2fsecret.conda",
    "linux-64/%252e%252e/secret.conda",
    "linux-64/.//../../secret.conda",
], ids=["dotdot", "encoded", "mixed-case", "encoded-slash", "double-encoded", "empty"])
def test_traversal_is_refused_before_anything_is_opened(
        layout: tuple[Path, Path, str], tmp_path: Path, tail: str) -> None:
    channel, secret, sha = layout
    url = f"{channel.as_uri()}/{tail}"
    pkgs = tmp_path / "pkgs"
    for sources in (None, Sources.of([channel.as_uri()])):
        # the right sha256 and no policy: the builder refuses on its own
        with pytest.raises(UnsafeURL) as err:
            fetch(url, sha, pkgs, package="ok", sources=sources)
        assert str(secret) not in str(err.value) and sha not in str(err.value)
    assert not pkgs.exists() or not any(pkgs.iterdir())


def test_a_url_outside_the_sources_is_refused(layout: tuple[Path, Path, str],
                                              tmp_path: Path) -> None:
    channel, secret, sha = layout
    with pytest.raises(UnsafeURL, match="not under a channel"):
        fetch(secret.as_uri(), sha, tmp_path / "pkgs", package="ok",
              sources=Sources.of([channel.as_uri()]))
    # a channel whose name extends the allowed one is not inside it
    (tmp_path / "chan-evil" / "linux-64").mkdir(parents=True)
    evil = tmp_path / "chan-evil" / "linux-64" / "ok-1-0.conda"
    evil.write_bytes(b"s3cret")
    with pytest.raises(UnsafeURL, match="not under a channel"):
        fetch(evil.as_uri(), sha, tmp_path / "pkgs", package="ok",
              sources=Sources.of([channel.as_uri()]))


def test_a_symlink_out_of_the_channel_is_refused(layout: tuple[Path, Path, str],
                                                 tmp_path: Path) -> None:
    channel, secret, sha = layout
    (channel / "linux-64" / "link-1-0.conda").symlink_to(secret)
    with pytest.raises(UnsafeURL, match="leads out of its channel"):
        fetch((channel / "linux-64" / "link-1-0.conda").as_uri(), sha, tmp_path / "pkgs",
              package="link", sources=Sources.of([channel.as_uri()]))


def test_the_volume_is_never_read(tmp_path: Path) -> None:
    """Even a channel configured over the volume cannot serve its database."""
    volume = tmp_path / "volume"
    (volume / "linux-64").mkdir(parents=True)
    db = volume / "linux-64" / "envyard-1-0.conda"
    db.write_bytes(b"SQLite format 3\0")
    sha = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(UnsafeURL, match="volume"):
        fetch(db.as_uri(), sha, volume / "pkgs", package="envyard",
              sources=Sources.of([tmp_path.as_uri()], [volume]))


@pytest.mark.parametrize("name", [".envyard-cache-lock", "x.conda.verified", "passwd",
                                  "-x.conda"])
def test_only_package_file_names_enter_the_cache(tmp_path: Path, name: str) -> None:
    src = tmp_path / "chan" / name
    src.parent.mkdir()
    src.write_bytes(b"x")
    with pytest.raises(UnsafeURL, match="package file name"):
        fetch(src.as_uri(), hashlib.sha256(b"x").hexdigest(), tmp_path / "pkgs", package="p")


def test_a_fifo_does_not_hang_the_build(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo-1-0.conda"
    os.mkfifo(fifo)
    with pytest.raises(FetchError, match="does not name a package file"):
        fetch(fifo.as_uri(), "0" * 64, tmp_path / "pkgs", package="fifo")


def test_errors_name_the_package_not_the_file(layout: tuple[Path, Path, str],
                                              tmp_path: Path) -> None:
    channel, _, _ = layout
    with pytest.raises(FetchError) as missing:
        fetch(f"{channel.as_uri()}/linux-64/gone-1-0.conda", "0" * 64, tmp_path / "pkgs",
              package="gone")
    assert str(missing.value) == "gone: not found in its channel"
    ok = channel / "linux-64" / "ok-1-0.conda"
    with pytest.raises(FetchError) as mismatch:
        fetch(ok.as_uri(), "0" * 64, tmp_path / "pkgs", package="ok")
    assert "ok: sha256 mismatch" in str(mismatch.value)
    assert hashlib.sha256(b"package").hexdigest() not in str(mismatch.value)
    assert str(channel) not in str(mismatch.value)


def test_a_trickling_server_cannot_hold_a_fetch(tmp_path: Path) -> None:
    """Found by review: a server sending a byte every few seconds never tripped the
    socket timeout, so the build held its slot for ever. Now the install's limit covers
    the download, and a stop (a cancel) ends it between chunks."""
    import http.server
    import threading
    import time

    from envyard.builder.errors import Stopped
    from envyard.builder.fetch import Deadline

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x-1-0.conda"
    try:
        start = time.monotonic()
        with pytest.raises(FetchError, match="did not finish in time"):
            fetch(url, "0" * 64, tmp_path / "pkgs", package="x",
                  deadline=Deadline(time.monotonic() + 1.0))
        assert time.monotonic() - start < 5
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        with pytest.raises(Stopped):
            fetch(url, "0" * 64, tmp_path / "pkgs", package="x",
                  deadline=Deadline(stop=stop.is_set))
    finally:
        server.shutdown()
        server.server_close()
    assert not [p for p in (tmp_path / "pkgs").iterdir() if p.name.startswith(".x-")]


@pytest.mark.parametrize("tail", ["linux-64/..;/..;/secret.conda",
                                  "linux-64/%ef%bc%8e%ef%bc%8e/x.conda",
                                  "linux-64/a;b/x.conda", "linux-64/sp ace/x.conda"])
def test_segments_hold_only_what_channels_use(layout: tuple[Path, Path, str], tmp_path: Path,
                                              tail: str) -> None:
    """Found by review: `..;` (which Tomcat-based mirrors read as `..`) and look-alike
    fullwidth dots passed."""
    channel, _, sha = layout
    with pytest.raises(UnsafeURL, match="character in its path"):
        fetch(f"{channel.as_uri()}/{tail}", sha, tmp_path / "pkgs", package="ok")


@pytest.mark.parametrize("channel,pattern,allowed", [
    ("https://attacker.net/.example.com/x", "https://*.example.com/*", False),
    ("https://repo.example.com/main", "https://*.example.com/*", True),
    ("http://[::1]:8000/chan", "http://[::1]:8000/chan", True),
    ("https://host:443/x", "https://host/x", True),
    ("https://host/x", "https://HOST:443/x", True),
    ("https://h/a+b", "https://h/a%2Bb", True),
    ("file:///ok/%2e%2e/evil", "file:///ok/*", False),
    ("file:///srv/chan", "/srv/*", True),
])
def test_allow_list_patterns_are_matched_in_the_channels_form(channel: str, pattern: str,
                                                               allowed: bool) -> None:
    """Found by review: '*' in a host swallowed a '/', an IPv6 host never matched itself
    (fnmatch read its brackets as a class), default ports and encodings differed."""
    from envyard.builder.spec import ChannelPolicy

    assert ChannelPolicy.of([pattern]).check(channel) is allowed
