"""Mirrors and credentials in the library and on a laptop (``envyard lock --mirror``,
rattler's credentials file), against real servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from envyard.builder.demo.simple_index import write_simple_index
from envyard.builder.demo.wheels import ensure_wheels
from envyard.builder.errors import FetchError, SolveError, SpecError
from envyard.builder.fetch import Sources, fetch
from envyard.builder.lock import read_lock
from envyard.builder.locker import LockOptions, lock_env
from envyard.builder.network import (
    Credential,
    Credentials,
    Network,
    strip_auth,
    written_secret,
)
from envyard.builder.spec import parse_spec
from tests.channel_servers import Guard, channel_server, unreachable_url
from tests.conftest import HOME
from tests.servers import ENVYARD

PASSWORD = "pip-pa$$word/x"


def test_credentials_are_found_by_host_port_and_longest_path() -> None:
    creds = Credentials.parse({
        "repo.example.com": {"BearerToken": "whole-host"},
        "repo.example.com/private/ml": {"BasicHTTP": {"username": "u", "password": "pw1"}},
        "*.corp.example": {"CondaToken": "corp-token"},
        "127.0.0.1:8080/chan": {"BearerToken": "loopback"}})
    assert creds.find("https://repo.example.com/private/ml/noarch/x.json") == \
        Credential("basic", "pw1", "u")
    assert creds.find("https://repo.example.com/private/mlx/noarch") == \
        Credential("bearer", "whole-host")  # a path prefix is whole segments
    assert creds.find("https://conda.corp.example/c") == \
        Credential("conda-token", "corp-token")
    assert creds.find("https://evil-corp.example/c") is None
    assert creds.find("https://example.com/") is None
    # no port in the key: https on 443 only; a port: that port only (any scheme)
    assert creds.find("http://repo.example.com/x") is None
    assert creds.find("https://repo.example.com:8443/x") is None
    assert creds.find("http://127.0.0.1:8080/chan/noarch/repodata.json") == \
        Credential("bearer", "loopback")
    assert creds.find("http://127.0.0.1:8081/chan/noarch/repodata.json") is None


def test_mirrors_on_one_host_told_apart_only_by_port_are_refused_with_credentials() -> None:
    """rattler tells the header callback host and path, not the port: such a pair could
    send one server's credential to the other."""
    network = Network(credentials=Credentials.parse(
        {"127.0.0.1:8080": {"BearerToken": "t"}}))
    with pytest.raises(SpecError, match="another port or scheme"):
        network.client({"http://127.0.0.1:8080/c/": "http://127.0.0.1:8080/c/",
                        "http://127.0.0.1:9090/c/": "http://127.0.0.1:9090/c/"})
    network.client({"http://127.0.0.1:8080/c/": "http://127.0.0.1:8080/c/",
                    "http://127.0.0.1:9090/d/": "http://127.0.0.1:9090/d/"})


def test_redaction_covers_every_form_of_a_secret() -> None:
    creds = Credentials.parse({"h": {"BasicHTTP": {"username": "u", "password": PASSWORD}},
                               "anaconda.example": {"CondaToken": "tok-123"}})
    basic = Credential("basic", PASSWORD, "u").headers()["Authorization"].split()[1]
    text = (f"failed: {PASSWORD} http://u:pip-pa%24%24word%2Fx@h/simple Basic {basic} "
            "https://anaconda.example/t/tok-123/chan/noarch http://${USER}:${PASS}@h/c")
    shown = creds.redact(text)
    for secret in (PASSWORD, "pip-pa%24%24word%2Fx", basic, "tok-123", "${USER}"):
        assert secret not in shown
    assert "https://anaconda.example/chan/noarch" in shown and "http://h/c" in shown
    assert strip_auth("https://a:b@x/t/tok/y/z.conda") == "https://x/y/z.conda"
    assert strip_auth("https://u@x:p@host/chan") == "https://host/chan"  # the last '@'
    assert strip_auth("channel https://host/t/tok123 failed") == "channel https://host failed"
    assert written_secret("https://host/t/tok123") == "a conda token"


def test_a_private_pip_index_locks_with_basic_auth_never_kept(
        channel: Path, tmp_path: Path) -> None:
    """The pip: section is resolved against an index behind basic auth with the
    operator's credential; the lock's URLs carry none, and the wheels download with it."""
    wheels = list(ensure_wheels(HOME / "wheels", offline=True).values())
    index_root = write_simple_index(wheels, tmp_path / "index")
    spec = parse_spec("dependencies:\n  - python 3.11.*\n  - pip:\n"
                      "      - python-slugify==9.2.0\n")
    with channel_server(index_root, Guard(basic=("piper", PASSWORD))) as (url, guard):
        network = Network(credentials=Credentials.parse(
            {url.split("://", 1)[1]: {"BasicHTTP": {"username": "piper",
                                                     "password": PASSWORD}}}))
        opts = LockOptions(channels=[str(channel)], platforms=["linux-64"],
                           cache_dir=tmp_path / "cache", pip_index=f"{url}/simple",
                           network=network)
        lock = lock_env(spec, opts)
        pip = [p for p in lock.package if p.manager == "pip"]
        assert {p.name for p in pip} == {"python-slugify", "text-unidecode"}
        for p in pip:
            assert p.url.startswith(f"{url}/") and "piper" not in p.url
            assert PASSWORD not in p.url
        wheel = fetch(pip[0].url, pip[0].hash.sha256, tmp_path / "pkgs", package=pip[0].name,
                      sources=Sources.of([url], network=network))
        assert wheel.is_file()
        assert any(s.status == 200 and s.path.endswith(".whl") for s in guard.seen)
        opts.network = Network()
        with pytest.raises(SolveError) as refused:
            lock_env(spec, opts)
    assert PASSWORD not in str(refused.value)


def test_a_redirect_to_another_host_does_not_carry_the_credential(tmp_path: Path) -> None:
    """A private channel that redirects a package elsewhere (an open redirect, a CDN)
    must not hand the service's credential to that host."""
    body = b"package bytes"
    (tmp_path / "other" / "noarch").mkdir(parents=True)
    (tmp_path / "other" / "noarch" / "x-1-0.conda").write_bytes(body)
    with channel_server(tmp_path / "other") as (other, other_guard):
        target = other.replace("127.0.0.1", "localhost")

        class Redirect(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", f"{target}{self.path[len('/chan'):]}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            chan = f"http://127.0.0.1:{server.server_address[1]}/chan"
            network = Network(credentials=Credentials.parse(
                {chan.split("://", 1)[1]: {"BearerToken": "do-not-forward"}}))
            got = fetch(f"{chan}/noarch/x-1-0.conda", hashlib.sha256(body).hexdigest(),
                        tmp_path / "pkgs", package="x", sources=Sources.of([chan],
                                                                           network=network))
        finally:
            server.shutdown()
            server.server_close()
    assert got.read_bytes() == body
    assert other_guard.seen and all(s.authorization is None for s in other_guard.seen)


def test_a_download_falls_back_to_the_next_mirror_and_says_so(channel: Path,
                                                              tmp_path: Path) -> None:
    canonical = "https://conda.example.invalid/private"
    with channel_server(channel) as (mirror, guard):
        heard: list[str] = []
        network = Network.of({canonical: [unreachable_url(), mirror]})
        sources = Sources.of([canonical], network=network)
        sources = Sources(sources.bases, sources.forbidden, sources.network, heard.append)
        pkg = next((channel / "noarch").glob("toolz-*.conda"))
        url = f"{canonical}/noarch/{pkg.name}"
        sha = hashlib.sha256(pkg.read_bytes()).hexdigest()
        assert fetch(url, sha, tmp_path / "pkgs", package="toolz", sources=sources).is_file()
    assert len(heard) == 1 and "failed" in heard[0] and f"trying {mirror}/" in heard[0]
    assert any(s.path.endswith(pkg.name) for s in guard.seen)
    with pytest.raises(FetchError, match=r"toolz: download from conda\.example\.invalid"):
        fetch(url, sha, tmp_path / "pkgs2", package="toolz", sources=Sources.of(
            [canonical], network=Network.of({canonical: [unreachable_url()]})))


def test_envyard_lock_on_a_laptop_reads_a_mirror_and_a_private_channel(
        channel: Path, tmp_path: Path) -> None:
    """`envyard lock --mirror` keeps the channel's own URLs in the lock; a private
    channel is read with the credentials file rattler and pixi use."""
    tree = tmp_path / "site"
    tree.mkdir()
    (tree / "private").symlink_to(channel, target_is_directory=True)
    auth = tmp_path / "credentials.json"
    env = {**os.environ, "RATTLER_AUTH_FILE": str(auth), "ENVYARD_HOME": str(tmp_path / "h")}
    with channel_server(tree, Guard(bearer="laptop-token")) as (url, _):
        canonical = f"{unreachable_url()}/mirrored"
        spec = tmp_path / "environment.yml"
        spec.write_text(f"channels: [{canonical}]\ndependencies: [python=3.11, toolz]\n")
        auth.write_text(json.dumps({url.split("://", 1)[1]: {"BearerToken": "laptop-token"}}))
        done = subprocess.run(
            [ENVYARD, "lock", str(spec), "-p", "linux-64", "-o", str(tmp_path / "a.yml"),
             "--mirror", f"{canonical}={url}/private"], env=env, capture_output=True,
            text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        lock = read_lock(tmp_path / "a.yml")
        assert [c.url for c in lock.metadata.channels] == [canonical]
        assert all(p.url.startswith(canonical + "/") for p in lock.package)
        assert f"read from mirror {url}/private" in done.stderr
        auth.write_text("{}")
        shutil.rmtree(tmp_path / "h", ignore_errors=True)
        done = subprocess.run(
            [ENVYARD, "lock", str(spec), "-p", "linux-64", "-o", str(tmp_path / "b.yml"),
             "--mirror", f"{canonical}={url}/private"], env=env, capture_output=True,
            text=True, timeout=300)
        assert done.returncode != 0 and "401" in done.stderr, done.stderr
        assert "laptop-token" not in done.stderr
