"""The Helm chart renders for several value sets, lints clean, passes strict Kubernetes
schema validation, and refuses values that break its schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

CHART = REPO / "charts" / "envyard"
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-postgresql": {"database": {"existingSecret": "envyard-db"}, "replicas": 3},
    "kubernetes-gcs": {"runner": "kubernetes", "database": {"existingSecret": "envyard-db"},
                       "replicas": 2, "storage": {"backend": "gcs", "bucket": "team-envs",
                                                  "existingSecret": "gcs-key"},
                       "builds": {"profiles": {"gpu": {"nodeSelector": {"pool": "gpu"}}},
                                  "gpuProfile": {"nodeSelector": {"accelerator": "nvidia"}}},
                       "settings": {"virtual_packages_allowed": {"__cuda": "<=12.8"},
                                    "mirrors": {"conda-forge": [
                                        "https://artifactory.example.org/cf"]},
                                    "credentialsSecret": "channel-creds"}},
    "s3-storage": {"storage": {"backend": "s3", "bucket": "team-envs", "region": "eu-west-1",
                               "endpoint": "https://minio.example.org",
                               "existingSecret": "s3-keys"}},
    "images": {"images": {"registry": "registry.example.org", "base": "registry.example.org/"
                          "base:bookworm", "username": "ci", "existingSecret": "registry"}},
    "hub-disabled": {"hub": {"enabled": False}, "volume": {"existingClaim": "shared-nfs",
                                                           "mountPath": "/home/conda",
                                                           "size": "1Ti"}},
    "dask-gateway": {"daskGateway": {"enabled": True},
                     "images": {"registry": "registry.example.org",
                                "base": "registry.example.org/base:bookworm"}},
    "dask-gateway-process": {"daskGateway": {"enabled": True, "backend": "process",
                                             "envyardUrl": "http://envyard.hub:8765",
                                             "offerDefault": False}},
}


def _render(values: dict[str, Any]) -> dict[str, str]:
    from helm_python.chart import Chart

    chart = Chart.load(str(CHART))
    chart.validate_schema(values)
    return chart.render(values, name="ey", namespace="hub")


@pytest.mark.parametrize("case", sorted(VALUE_SETS))
def test_renders_and_validates(case: str, tmp_path: Path) -> None:
    rendered = _render(VALUE_SETS[case])
    docs = [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Role", "RoleBinding"} <= kinds
    assert ("PersistentVolumeClaim" in kinds) == (case != "hub-disabled")
    hub = any(d["metadata"]["name"] == "ey-hub" for d in docs)
    assert hub == (case != "hub-disabled")
    for d in docs:  # secrets come by reference: never a value in a manifest
        if d["kind"] == "ConfigMap":  # env entries for build Jobs: references only
            text = yaml.safe_dump(d["data"]).lower()
            assert "password:" not in text and "secret_access_key:" not in text
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for e in c.get("env", []):
                if any(w in e["name"] for w in ("PASSWORD", "TOKEN", "SECRET")):
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], e
    files = []
    for i, d in enumerate(docs):
        f = tmp_path / f"{i}.yaml"
        f.write_text(yaml.safe_dump(d))
        files.append(str(f))
    cli = str(Path(sys.executable).with_name("kubernetes-validate"))
    done = subprocess.run([cli, "-k", "1.33.0", "--strict", *files], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lints_clean() -> None:
    import helm_python

    report = helm_python.lint(str(CHART), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("values", [
    {"replicas": 0}, {"volume": {"mountPath": "relative", "size": "1Gi"}},
    {"storage": {"backend": "ftp"}}, {"hub": {"enabled": "yes"}}, {"typo": 1},
    {"settings": {"build_concurrency": 0}}, {"runner": "nomad"},
    {"storage": {"backend": "s3"}}, {"replicas": 3}, {"runner": "kubernetes"},
    {"daskGateway": {"enabled": True, "backend": "yarn"}},
    {"daskGateway": {"enabled": True}},
    {"daskGateway": {"enabled": True, "backend": "process", "envyardUrl": 'http://x", 1)#'}},
    {"daskGateway": {"enabled": True, "backend": "process", "existingSecret": ""}},
], ids=["replicas", "mount-path", "backend", "hub-enabled", "unknown-key", "concurrency",
        "runner", "no-bucket", "replicas-on-sqlite", "kubernetes-on-sqlite",
        "gateway-backend", "gateway-images-without-registry", "gateway-url-injection",
        "gateway-no-secret"])
def test_bad_values_are_refused(values: dict[str, Any]) -> None:
    from helm_python import HelmError

    with pytest.raises(HelmError):
        _render(values)


def test_dockerfile_is_sound() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()
             and not line.strip().startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "ARG BASE_DIGEST"
    assert lines[2] == "FROM ${BASE_IMAGE}@${BASE_DIGEST}"
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert lines[-1].startswith(("CMD", "ENTRYPOINT"))


def test_hub_config_and_service_settings_agree(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path, channel: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The rendered hub config runs, gives users the kernels of the namespaces envyard
    says they read (asked at spawn with the server's token; without an answer, those the
    rendered envyard settings grant them), and points envyard at the hub."""
    import asyncio
    import logging
    from types import SimpleNamespace

    from traitlets.config import Config

    from envyard.service.hub_auth import jupyter_path
    from envyard.service.settings import Settings
    from tests.servers import Service, free_port

    docs = [d for text in _render({"hub": {"enabled": True, "publicUrl": "https://hub.example",
                                           "grants": {"{user}": "developer", "geo": "viewer",
                                                      "{group}": "developer"},
                                           "groupGrants": {"ops": {"*": "admin",
                                                                   "infra": "viewer"}},
                                           "environmentProfiles": True}}
                                   ).values() for d in yaml.safe_load_all(text) if d]
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    monkeypatch.setenv("ENVYARD_HUB_TOKEN", "t0ken")
    c = Config()
    hub_config: dict[str, Any] = {"c": c}
    exec(compile(maps["ey-hub"]["jupyterhub_config.py"], "jupyterhub_config.py", "exec"),
         hub_config)
    (service,) = c.JupyterHub.services
    assert service["api_token"] == "t0ken"
    assert service["oauth_redirect_uri"] == "https://hub.example/services/envyard/oauth_callback"
    groups = [SimpleNamespace(name=g) for g in ("ops", "bio", "Not A Name")]

    def spawn(token: str) -> str:
        spawner = SimpleNamespace(user=SimpleNamespace(name="alice", groups=groups),
                                  api_token=token, environment=dict(
                                      c.KubeSpawner.environment), log=logging.getLogger())
        asyncio.run(c.KubeSpawner.pre_spawn_hook(spawner))
        assert spawner.environment["ENVYARD_SERVER"] == "http://ey:8765"
        return str(spawner.environment["JUPYTER_PATH"])

    hub_config["envyard"] = f"http://127.0.0.1:{free_port()}"  # envyard does not answer
    paths = spawn("a-hub-token")
    settings_file = tmp_path / "envyard.yml"
    settings_file.write_text(maps["ey-settings"]["envyard.yml"])
    monkeypatch.setenv("ENVYARD_CONFIG", str(settings_file))
    settings = Settings()
    assert settings.hub.api_url == "http://ey-hub:8081/hub/api"
    assert settings.hub.public_url == "https://hub.example"
    assert paths == jupyter_path(settings.root / "jupyter", "alice", settings.hub.grants,
                                 ["ops", "bio", "Not A Name"], settings.hub.group_grants)
    # Helm merges maps: the default `shared` grant stays unless set to null
    assert set(paths.split(":")) == {f"/srv/envyard/jupyter/{n}" for n in (
        "alice", "geo", "shared", "bio", "ops", "infra")}
    envyard = Service(tmp_path / "volume", channel)
    envyard.root.mkdir()
    envyard.start()
    try:
        hub_config["envyard"] = envyard.url  # what envyard answers for the token wins
        assert spawn(envyard.token("alice=developer", "team=viewer")).split(":") == [
            "/srv/envyard/jupyter/alice", "/srv/envyard/jupyter/team"]
        # the spawn page's profiles: envyard's answer, asked with a token made for the
        # user (the profile_list the chart wires is the one that envyard URL answers)
        made: list[dict[str, Any]] = []
        user = SimpleNamespace(name="alice", new_api_token=lambda **kw: (
            made.append(kw), envyard.token("alice=viewer"))[1])
        spawner = SimpleNamespace(user=user, log=logging.getLogger())
        here = Config()  # the same config, with this envyard as the release's service
        exec(compile(maps["ey-hub"]["jupyterhub_config.py"].replace(
            "http://ey:8765", envyard.url), "jupyterhub_config.py", "exec"), {"c": here})
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            profiles = asyncio.run(here.KubeSpawner.profile_list(spawner))
        # only the hub's own image: no environment has one yet
        assert [p["kubespawner_override"]["image"] for p in profiles] == [
            "quay.io/jupyterhub/k8s-singleuser-sample:4.1.0"]
        assert not caplog.records, caplog.text  # envyard answered (no environments yet)
        assert made and made[0]["scopes"] == ["access:services!service=envyard"]
    finally:
        envyard.stop()


def test_kubernetes_runner_settings_from_the_chart(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """The rendered settings start the Kubernetes runner with PostgreSQL and GCS, and the
    Jobs it would create pass strict validation and get the same secrets as the service."""
    from envyard.service.kube_jobs import job_manifest
    from envyard.service.settings import Settings

    docs = [d for text in _render(VALUE_SETS["kubernetes-gcs"]).values()
            for d in yaml.safe_load_all(text) if d]
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    settings_file = tmp_path / "envyard.yml"
    settings_file.write_text(maps["ey-settings"]["envyard.yml"])
    monkeypatch.setenv("ENVYARD_CONFIG", str(settings_file))
    settings = Settings()
    assert settings.runner == "kubernetes" and settings.storage.backend == "gcs"
    assert settings.kubernetes.namespace == "hub"
    assert settings.kubernetes.volume_claim == "ey-volume"
    assert settings.kubernetes.profiles["gpu"].node_selector == {"pool": "gpu"}
    assert settings.virtual_packages_allowed == {"__cuda": "<=12.8"}
    assert settings.mirrors == {"conda-forge": ["https://artifactory.example.org/cf"]}
    cuda = job_manifest(settings, 8, "team", "torch", 1, gpu=True)["spec"]["template"]["spec"]
    assert cuda["nodeSelector"] == {"accelerator": "nvidia"}  # kubernetes.gpu_profile
    deployment = next(d for d in docs if d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "ey")
    service_env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    job = job_manifest(settings, 7, "gpu", "torch", 1)
    pod = job["spec"]["template"]["spec"]
    job_env = pod["containers"][0]["env"]
    assert [e for e in service_env if "valueFrom" in e and "HUB" not in e["name"]] == \
        [e for e in job_env if "valueFrom" in e]  # database URL: the same Secret
    assert {"name": "ENVYARD_CREDENTIALS", "valueFrom": {"secretKeyRef": {
        "name": "channel-creds", "key": "credentials.json"}}} in job_env  # channels' too
    assert pod["containers"][0]["image"] == deployment["spec"]["template"]["spec"][
        "containers"][0]["image"]
    # found by review: a release named like a Service gets ENVYARD_<SVC>_PORT=tcp://…
    # injected by Kubernetes, read as a setting (ENVYARD_PORT) or refused as an old name
    assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False
    assert pod["enableServiceLinks"] is False
    assert {"name": "secret-0", "secret": {"secretName": "gcs-key"}} in pod["volumes"]
    assert settings.storage.credentials is not None and \
        str(settings.storage.credentials).startswith(
            pod["containers"][0]["volumeMounts"][-1]["mountPath"])
    f = tmp_path / "job.yaml"
    f.write_text(yaml.safe_dump(job))
    cli = str(Path(sys.executable).with_name("kubernetes-validate"))
    done = subprocess.run([cli, "-k", "1.33.0", "--strict", str(f)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("case", ["dask-gateway", "dask-gateway-process"])
def test_dask_gateway_config_runs_in_the_gateway(case: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The rendered extraConfig, run as dask-gateway-server runs its config, gives the
    gateway's Backend envyard's per-user options with the values' envyard, token and
    backend kind; and the dask-gateway chart's values name the token's Secret."""
    import asyncio
    from types import SimpleNamespace

    from dask_gateway_server.backends.base import Backend
    from traitlets.config import Config

    import envyard.service.gateway as gateway

    values = VALUE_SETS[case]["daskGateway"]
    docs = [d for text in _render(VALUE_SETS[case]).values()
            for d in yaml.safe_load_all(text) if d]
    (data,) = [d["data"] for d in docs if d["metadata"]["name"] == "ey-dask-gateway"]
    chart_values = yaml.safe_load(data["dask-gateway-values.yaml"])["gateway"]
    assert chart_values["extraConfig"]["envyard"] == data["envyard.py"]
    (env,) = chart_values["env"]
    assert env == {"name": "ENVYARD_GATEWAY_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "envyard-gateway", "key": "token"}}}
    asked: list[tuple[str, str, Any]] = []

    async def answer(url: str, token: str, user: Any, *, timeout: float) -> list[Any]:
        asked.append((url, token, user.name))
        return [{"environment": "team/geo", "prefix": "/srv/envyard/prefixes/abc",
                 "image": "registry.example.org/team-geo:v2", "problem": None,
                 "offered": True}]

    monkeypatch.setattr(gateway, "environments_of", answer)
    monkeypatch.setenv("ENVYARD_GATEWAY_TOKEN", "ey_t0ken")
    c = Config()
    exec(compile(data["envyard.py"], "dask_gateway_config.py", "exec"), {"c": c})
    backend = Backend(config=c)
    options = asyncio.run(backend.get_cluster_options(SimpleNamespace(name="alice")))
    url = values.get("envyardUrl") or "http://ey:8765"
    assert asked == [(url, "ey_t0ken", "alice")]
    (spec,) = options.get_specification()
    offered = spec["spec"]["options"]
    assert offered == (["default", "team/geo"] if values.get("offerDefault", True)
                       else ["team/geo"])
    config = options.get_configuration(options.parse_options({"environment": "team/geo"}),
                                       None)
    if values.get("backend", "kubernetes") == "kubernetes":
        assert config["image"] == "registry.example.org/team-geo:v2"
    else:
        assert config["worker_cmd"] == ["/srv/envyard/prefixes/abc/bin/dask", "worker"]
    assert not any(d["metadata"]["name"] == "ey-dask-gateway" for text in _render(
        {}).values() for d in yaml.safe_load_all(text) if d)  # off by default
