"""Hub wiring without a hub: who gets which roles, which kernels a server sees, and a clear
refusal when the proxy is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from envyard.service.hub_auth import grants_for, jupyter_path
from envyard.service.models import Role
from tests.servers import ENVYARD

DEFAULT = {"{user}": "developer", "shared": "viewer"}


def test_default_grants() -> None:
    assert grants_for("alice", False, DEFAULT, "admin") == {
        "alice": Role.developer, "shared": Role.viewer}
    assert grants_for("root", True, DEFAULT, "admin")["*"] is Role.admin
    assert "*" not in grants_for("root", True, DEFAULT, None)


def test_user_names_that_are_not_namespace_names_grant_nothing_of_their_own() -> None:
    # hub user names may be e-mail addresses; they must not be mapped onto someone else's
    assert grants_for("a@b.org", False, DEFAULT, None) == {"shared": Role.viewer}
    assert grants_for("../etc", False, DEFAULT, None) == {"shared": Role.viewer}


def test_configured_grants() -> None:
    grants = {"team-{user}": "admin", "geo": "developer"}
    assert grants_for("bo", False, grants, None) == {"team-bo": Role.admin,
                                                     "geo": Role.developer}


def test_group_grants() -> None:
    grants = {"{user}": "developer", "{group}": "developer", "shared": "viewer"}
    by_group = {"admins": {"*": "admin"}, "geo": {"shared": "developer"}}
    assert grants_for("al", False, grants, None, ["geo", "bio"], by_group) == {
        "al": Role.developer, "bio": Role.developer, "geo": Role.developer,
        "shared": Role.developer}  # the group rule comes later and wins
    assert grants_for("ro", False, grants, None, ["admins"], by_group)["*"] is Role.admin
    # a group whose name is not a namespace name grants nothing of its own
    assert grants_for("al", False, grants, None, ["Data Team", "../x"], by_group) == {
        "al": Role.developer, "shared": Role.viewer}
    assert jupyter_path(Path("/j"), "al", grants, ["geo"], by_group).split(":") == [
        "/j/al", "/j/geo", "/j/shared"]


def test_jupyter_path_lists_readable_namespaces(tmp_path: Path) -> None:
    assert jupyter_path(tmp_path, "alice", DEFAULT).split(":") == [
        str(tmp_path / "alice"), str(tmp_path / "shared")]


def test_serve_hub_without_proxy_says_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "ENVYARD_ROOT": str(tmp_path / "v"),
           "ENVYARD_HUB__PROXY_COMMAND": "no-such-proxy", "ENVYARD_HOME": str(tmp_path)}
    done = subprocess.run([ENVYARD, "serve", "--hub", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 20
    assert "npm install -g configurable-http-proxy" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "v" / "hub").exists()


def test_the_hub_keeps_every_other_setting_of_the_service(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: pointing the settings at the embedded hub re-read the environment
    and the file, and a profile spelt ``nodeSelector`` (as the README writes it) then
    failed validation: `serve --hub` ended in an internal error."""
    from envyard.service.hub import EmbeddedHub
    from envyard.service.settings import load_settings

    config = tmp_path / "envyard.yml"
    config.write_text("kubernetes: {profiles: {gpu: {nodeSelector: {pool: gpu}}}}\n"
                      "image: {registry: registry.example.org}\n")
    monkeypatch.setenv("ENVYARD_CONFIG", str(config))
    monkeypatch.setenv("ENVYARD_IMAGE__REGISTRY_PASSWORD", "s3cr3t")
    settings = load_settings(root=tmp_path / "volume")
    hub = EmbeddedHub(settings, "http://127.0.0.1:8765")
    shown = hub.settings_for_service(settings)
    assert shown.hub.api_url and shown.hub.api_url.startswith("http://127.0.0.1:")
    assert shown.hub.service_token == hub.token and shown.trusted_proxies == ["127.0.0.1"]
    assert shown.kubernetes.profiles["gpu"].node_selector == {"pool": "gpu"}
    assert shown.image.registry_password == "s3cr3t" and shown.root == tmp_path / "volume"


def test_a_role_on_every_namespace_is_not_lowered_by_naming_one() -> None:
    """Found by review: a hub admin (``*``: admin) was only viewer on ``shared``, because a
    namespace's own entry is preferred over ``*``'s (as a token's narrowing must be)."""
    from envyard.service.auth import Principal

    root = Principal("root", grants_for("root", True, DEFAULT, "admin"))
    assert root.role_on("shared") is Role.admin and root.role_on("root") is Role.admin
    by_group = {"ops": {"*": "admin"}, "geo": {"shared": "viewer"}}
    ops = Principal("o", grants_for("o", False, DEFAULT, None, ["geo", "ops"], by_group))
    assert ops.role_on("o") is Role.admin and ops.role_on("shared") is Role.admin
    # a group's rule raises a role, never lowers one an earlier rule gave
    raised = {"geo": {"shared": "developer"}, "bio": {"shared": "viewer"}}
    assert grants_for("a", False, DEFAULT, None, ["bio", "geo"], raised)["shared"] is (
        Role.developer)
    # a token's named entry still narrows its '*'
    token = Principal("t", {"*": Role.developer, "geo": Role.viewer})
    assert token.role_on("geo") is Role.viewer and token.role_on("bio") is Role.developer


def test_a_user_name_is_not_read_as_a_template() -> None:
    """Found by review: '{user}' was filled before '{group}', so a user named '{group}'
    became every group's name."""
    grants = {"{user}-{group}": "admin"}
    assert grants_for("{group}", False, grants, None, ["geo"]) == {}
    assert grants_for("al", False, grants, None, ["geo"]) == {"al-geo": Role.admin}


def test_the_spawn_form_names_one_environment_or_none() -> None:
    from envyard.service.spawn import options_from_form

    assert options_from_form({"environment": ["geo/maps"]}) == {"environment": "geo/maps"}
    # "none" is said out loud: the hub would reuse the last choice for an empty answer
    assert options_from_form({"environment": [""]}) == {"environment": ""}
    assert options_from_form({}) == {"environment": ""}
    for bad in ("../etc/passwd", "geo", "geo/maps/x", "geo/<script>"):
        with pytest.raises(ValueError, match="is not an environment"):
            options_from_form({"environment": [bad]})


def test_a_role_on_every_namespace_lists_every_namespaces_kernels(tmp_path: Path) -> None:
    """Found by review: a hub admin ('*') was offered every environment at spawn while
    the server's JUPYTER_PATH named only the namespaces the grants name."""
    from envyard.service.hub_auth import readable_path

    for ns in ("alice", "geo", "zed"):
        (tmp_path / ns).mkdir()
    assert readable_path(tmp_path, {"alice": "developer", "*": "admin"}).split(":") == [
        str(tmp_path / n) for n in ("alice", "geo", "zed")]
    assert readable_path(tmp_path, {"geo": "viewer"}) == str(tmp_path / "geo")


def test_a_saved_choice_can_be_dropped_when_envyard_is_away() -> None:
    """Found by review: with no form (envyard down, or nothing to offer) the hub reused a
    saved choice, and every start failed. Now the form offers to drop it, and a start
    while envyard does not answer goes on without the choice."""
    import asyncio
    import logging
    from types import SimpleNamespace

    from envyard.service.spawn import apply_choice, options_form
    from tests.servers import free_port

    away = f"http://127.0.0.1:{free_port()}"
    spawner = SimpleNamespace(
        user=SimpleNamespace(name="alice"), log=logging.getLogger("t"), api_token="t",
        user_options={"environment": "alice/geo"}, args=["--x",
                                                         "--MultiKernelManager.default_"
                                                         "kernel_name=alice-geo"],
        environment={"ENVYARD_ENVIRONMENT": "alice/geo", "PATH": "/v/envs/alice/geo/bin",
                     "JUPYTER_PATH": "/j/alice"})
    form = asyncio.run(options_form(away, token_for=lambda s: "t")(spawner))
    assert 'name="environment"' in form and '<option value="">' in form
    spawner.user_options = {}
    assert asyncio.run(options_form(away, token_for=lambda s: "t")(spawner)) == ""
    spawner.user_options = {"environment": "alice/geo"}
    asyncio.run(apply_choice(spawner, away, "/v"))
    assert spawner.environment == {"JUPYTER_PATH": "/j/alice"}
    assert spawner.args == ["--x"]
