"""Channels as sites run them, through a real `envyard serve` and real HTTP servers on
127.0.0.1: the spec's own channels under an allow-list (narrowed per namespace), private
channels behind basic auth, a bearer token and a conda token with the service's
credentials (never shown), and mirrors in front of an unreachable channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envyard.builder.lock import parse_lock
from tests.channel_servers import Guard, channel_server, unreachable_url
from tests.servers import Service
from tests.service.conftest import api, wait_ready

PASSWORD = "s3cret-basic-pw"
BEARER = "bearer-tok-0123456789"
CONDA_TOKEN = "ct-abcdef-987"
GUARDS = {"basic": Guard(basic=("envyard", PASSWORD)), "bearer": Guard(bearer=BEARER),
          "token": Guard(conda_token=CONDA_TOKEN)}
SPEC = "channels: [{channel}]\ndependencies: [python=3.11, toolz]\n"


@pytest.fixture(scope="module")
def site(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three private copies of the demo channel (basic, bearer, conda token), one that
    the service has no credentials for, and a mirror; the URLs by name."""
    tree = tmp_path_factory.mktemp("site")
    for name in ("basic", "bearer", "token", "nocreds", "mirror"):
        (tree / name).symlink_to(channel, target_is_directory=True)
    with channel_server(tree, GUARDS["basic"]) as (basic, _), \
            channel_server(tree, GUARDS["bearer"]) as (bearer, _), \
            channel_server(tree, GUARDS["token"]) as (token, _), \
            channel_server(tree) as (mirror, _):
        yield {"basic": f"{basic}/basic", "bearer": f"{bearer}/bearer",
               "token": f"{token}/token", "nocreds": f"{basic}/nocreds",
               "mirror": f"{mirror}/mirror", "dead": f"{unreachable_url()}/mirror",
               "canonical": f"{unreachable_url()}/conda-mirrored"}


@pytest.fixture(scope="module")
def svc(site: dict[str, str], channel: Path, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Service]:
    """The service with the bearer token in a credentials file (rattler's format) and the
    basic and conda-token credentials in ENVYARD_CREDENTIALS (as from a Secret)."""
    root = tmp_path_factory.mktemp("channels") / "volume"
    root.mkdir()
    creds_file = root.parent / "credentials.json"
    def key(name: str) -> str:  # host:port/path, as the operator names it
        return site[name].split("://", 1)[1]

    creds_file.write_text(json.dumps({key("bearer"): {"BearerToken": BEARER}}))
    svc = Service(root, channel, extra_env={
        "ENVYARD_ALLOWED_CHANNELS": json.dumps(["http://127.0.0.1:*", channel.as_uri()]),
        "ENVYARD_CREDENTIALS_FILE": str(creds_file),
        "ENVYARD_CREDENTIALS": json.dumps({
            key("basic"): {"BasicHTTP": {"username": "envyard", "password": PASSWORD}},
            key("token"): {"CondaToken": CONDA_TOKEN}}),
        "ENVYARD_MIRRORS": json.dumps({site["canonical"]: [site["dead"], site["mirror"]]})})
    svc.start()
    yield svc
    svc.stop()


def _submit(c: httpx.Client, env: str, channel: str) -> dict[str, object]:
    r = c.post(f"/api/v1/environments/{env}/versions", content=SPEC.format(channel=channel))
    assert r.status_code == 202, r.text
    return wait_ready(c, env, r.json()["version"])


def _everything_shown(c: httpx.Client, env: str, number: int) -> str:
    """Every answer a reader of the version can get, and its pack's bytes."""
    base = f"/api/v1/environments/{env}/versions"
    texts = [c.get(f"{base}/{number}{part}").text
             for part in ("", "/log", "/lock", "/explicit", "/environment.yml", "/spec")]
    texts += [c.get(base).text, c.get(f"/api/v1/environments/{env}").text]
    pack = c.get(f"{base}/{number}/pack", follow_redirects=True)
    assert pack.status_code == 200
    return "\n".join(texts) + pack.content.decode("latin-1")


@pytest.mark.parametrize("kind", ["basic", "bearer", "token"])
def test_a_private_channel_builds_with_the_services_credentials_never_shown(
        svc: Service, site: dict[str, str], kind: str) -> None:
    with api(svc, svc.token("priv=developer")) as c:
        v = _submit(c, f"priv/{kind}", site[kind])
        assert v["state"] == "ready", v["error"]
        lock = parse_lock(c.get(f"/api/v1/environments/priv/{kind}/versions/1/lock").text)
        assert [ch.url for ch in lock.metadata.channels] == [site[kind]]
        assert all(p.url.startswith(site[kind] + "/") for p in lock.package)
        shown = _everything_shown(c, f"priv/{kind}", 1)
    for secret in (PASSWORD, BEARER, CONDA_TOKEN):
        assert secret not in shown
    assert secret_free(svc.log.read_text())
    served = [seen for seen in GUARDS[kind].seen if seen.status == 200]
    assert any(seen.path.endswith("repodata.json") for seen in served)  # the solve's
    if kind == "basic":  # the first build: later ones find the packages in the cache
        assert any(seen.path.endswith(".conda") for seen in served)  # the install's


def secret_free(text: str) -> bool:
    return not any(s in text for s in (PASSWORD, BEARER, CONDA_TOKEN))


def test_without_credentials_the_build_fails_naming_the_channel_and_401(
        svc: Service, site: dict[str, str]) -> None:
    with api(svc, svc.token("priv=developer")) as c:
        v = _submit(c, "priv/nocreds", site["nocreds"])
        assert v["state"] == "failed"
        error = str(v["error"])
        assert "401 Unauthorized" in error and "no credentials" in error, error
        assert "/nocreds" in error, error  # names the channel's URL
        assert secret_free(error + c.get("/api/v1/environments/priv/nocreds/versions/1/log"
                                          ).text)


def test_a_pushed_lock_naming_a_private_channel_installs_with_the_services_credentials(
        svc: Service, site: dict[str, str]) -> None:
    """A laptop's lock names the channel as conda-lock writes a private one
    (``${VAR}`` credentials in the URL); the service installs it with its own."""
    with api(svc, svc.token("priv=developer")) as c:
        assert _submit(c, "priv/laptop", site["basic"])["state"] == "ready"
        text = c.get("/api/v1/environments/priv/laptop/versions/1/lock").text
        host = site["basic"].split("://", 1)[1]
        laptop = text.replace(f"url: {site['basic']}\n",
                              f"url: http://${{USER}}:${{PASSWORD}}@{host}\n", 1)
        assert laptop != text
        r = c.post("/api/v1/environments/priv/pushed/locks", content=laptop)
        assert r.status_code == 202, r.text
        v = wait_ready(c, "priv/pushed", r.json()["version"])
        assert v["state"] == "ready", v["error"]


def test_a_mirror_serves_an_unreachable_channel_and_the_log_names_it(
        svc: Service, site: dict[str, str]) -> None:
    """The canonical URL answers nothing; the first mirror is down too: the second one
    serves. The lock names the canonical URLs, the log names both mirrors."""
    with api(svc, svc.token("mir=developer")) as c:
        v = _submit(c, "mir/geo", site["canonical"])
        assert v["state"] == "ready", v["error"]
        lock = parse_lock(c.get("/api/v1/environments/mir/geo/versions/1/lock").text)
        assert [ch.url for ch in lock.metadata.channels] == [site["canonical"]]
        assert all(p.url.startswith(site["canonical"] + "/") for p in lock.package)
        log = c.get("/api/v1/environments/mir/geo/versions/1/log").text
    assert f"mirror {site['dead']}/ failed" in log, log
    assert f"read from mirror {site['mirror']}" in log, log


def test_the_allow_list_refuses_a_channel_with_422_naming_it(svc: Service) -> None:
    with api(svc, svc.token("al=developer")) as c:
        for channel in ("https://evil.example.org/chan", "pytorch"):
            r = c.post("/api/v1/environments/al/x/versions",
                       content=SPEC.format(channel=channel))
            assert r.status_code == 422, r.text
            assert f"channel '{channel}' is not allowed here" in r.json()["detail"]


def test_a_spec_naming_no_channel_uses_the_default_channels(svc: Service, channel: Path
                                                            ) -> None:
    with api(svc, svc.token("al=developer")) as c:
        r = c.post("/api/v1/environments/al/plain/versions",
                   content="dependencies: [python=3.11, toolz]\n")
        assert r.status_code == 202
        assert wait_ready(c, "al/plain", r.json()["version"])["state"] == "ready"
        lock = parse_lock(c.get("/api/v1/environments/al/plain/versions/1/lock").text)
    assert [ch.url for ch in lock.metadata.channels] == [str(channel)]


def test_a_namespace_narrows_the_allow_list(svc: Service, site: dict[str, str],
                                            channel: Path) -> None:
    with api(svc, svc.token("narrow=admin")) as c:
        c.post("/api/v1/environments/narrow/first/versions",
               content="dependencies: [python=3.11]\n")  # the namespace exists
        r = c.put("/api/v1/namespaces/narrow/channels",
                  json={"allowed": [channel.as_uri()]})
        assert r.status_code == 200, r.text
        assert r.json()["narrowed"] == [channel.as_uri()]
        r = c.post("/api/v1/environments/narrow/x/versions",
                   content=SPEC.format(channel=site["basic"]))
        assert r.status_code == 422, r.text
        assert "narrowed by the namespace" in r.json()["detail"]
        r = c.post("/api/v1/environments/narrow/x/versions",
                   content=SPEC.format(channel=channel))
        assert r.status_code == 202, r.text
        r = c.put("/api/v1/namespaces/narrow/channels", json={"allowed": None})
        assert r.json()["narrowed"] is None
    with api(svc, svc.token("narrow=developer")) as c:
        r = c.put("/api/v1/namespaces/narrow/channels", json={"allowed": ["*"]})
        assert r.status_code == 403  # widening back is an admin's call, and only to the service's


def test_a_secret_written_into_a_spec_or_lock_is_refused_not_stored(
        svc: Service, site: dict[str, str]) -> None:
    """Before: a spec's `https://user:pw@…` channel was accepted (the password stored in
    the spec every reader of the namespace downloads) and a lock's was kept as written."""
    host = site["basic"].split("://", 1)[1]
    with api(svc, svc.token("leak=developer")) as c:
        r = c.post("/api/v1/environments/leak/spec/versions",
                   content=SPEC.format(channel=f"http://envyard:{PASSWORD}@{host}"))
        assert r.status_code == 422, r.text
        assert "password in its URL" in r.json()["detail"] and PASSWORD not in r.text
        assert _submit(c, "leak/ok", site["basic"])["state"] == "ready"
        text = c.get("/api/v1/environments/leak/ok/versions/1/lock").text
        server = site["basic"].rsplit("/", 1)[0]
        for written in (f"http://envyard:{PASSWORD}@{host}", f"{server}/t/{PASSWORD}/basic"):
            r = c.post("/api/v1/environments/leak/lock/locks", content=text.replace(
                f"url: {site['basic']}\n", f"url: {written}\n", 1))
            assert r.status_code == 422, r.text
            assert "in its URL" in r.json()["detail"] and PASSWORD not in r.text
        assert c.get("/api/v1/environments/leak/lock").status_code == 404  # nothing stored


def test_a_server_on_another_port_of_the_credentialed_host_gets_no_credential(
        svc: Service, site: dict[str, str], tmp_path: Path, channel: Path) -> None:
    """Found by an attack: credentials were matched by host alone (rattler's way), so a
    developer's channel on another port of 127.0.0.1 (which the allow-list admits)
    received the operator's password. A key names its port now (none: https on 443)."""
    (tmp_path / "basic").symlink_to(channel, target_is_directory=True)
    with channel_server(tmp_path) as (mine, guard), \
            api(svc, svc.token("atk=developer")) as c:
        v = _submit(c, "atk/steal", f"{mine}/basic")
        assert v["state"] == "ready", v["error"]  # an open channel: it builds
    assert guard.seen and all(seen.authorization is None for seen in guard.seen)
    assert all("/t/" not in seen.path for seen in guard.seen)
